// osrd's --stripe specification: the acks field and the errors it gives.
#include "osrd_config.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace nvbox::osr {
namespace {

const std::string kStripe = "name=fwd,flow=1,dst=10.20.0.0/24,egress=10.9.0.2:7400,"
                            "relays=10.1.1.2:7400+10.1.2.2:7400";

TEST(OsrdStripeSpec, AcksGoExpressUnlessStriped) {
  EXPECT_TRUE(parseStripeSpec(kStripe).expressAcks);
  EXPECT_TRUE(parseStripeSpec(kStripe + ",acks=express").expressAcks);
  EXPECT_FALSE(parseStripeSpec(kStripe + ",acks=striped").expressAcks);
}

TEST(OsrdStripeSpec, AnotherAcksValueIsOneErrorNamingTheStripe) {
  try {
    (void)parseStripeSpec(kStripe + ",acks=fast");
    FAIL() << "acks=fast was accepted";
  } catch (const std::invalid_argument &e) {
    EXPECT_STREQ(e.what(), "stripe 'fwd': acks must be express or striped, not 'fast'");
  }
}

} // namespace
} // namespace nvbox::osr
