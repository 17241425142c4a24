// One agent channel per router per process (orchestrator/src/agent_channel.hpp),
// against a fake transport that answers like osr-agent: users of one key
// share one channel, concurrent requests are serialised and each gets its
// own reply, a channel another process holds is waited for with one notice
// and then fails at the deadline, a failed channel is opened anew, and every
// wait ends at its deadline.
#include "agent_channel.hpp"

#include "nvbox/error.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <thread>
#include <vector>

namespace nvbox {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// What the fake agent does and saw, shared by the test and its transports.
struct FakeAgent {
  std::mutex mutex;
  Clock::time_point busyUntil{};      // another client holds the channel until then
  std::chrono::milliseconds delay{1}; // before a reply arrives
  bool fail = false;                  // the stream fails
  std::deque<std::pair<Clock::time_point, std::string>> replies;
  int made = 0, opens = 0, closes = 0;
  std::atomic<int> inside{0};      // threads in the transport right now
  std::atomic<int> overlapping{0}; // times two were

  // Marks a thread inside the transport for the scope.
  struct Inside {
    explicit Inside(FakeAgent &a) : agent(a) {
      if (agent.inside.fetch_add(1) > 0) {
        ++agent.overlapping;
      }
      std::this_thread::sleep_for(50us); // widen the window a race needs
    }
    ~Inside() { --agent.inside; }
    Inside(const Inside &) = delete;
    Inside &operator=(const Inside &) = delete;
    FakeAgent &agent;
  };
};

class FakeTransport final : public AgentTransport {
public:
  explicit FakeTransport(FakeAgent &agent) : agent_(agent) {
    const std::lock_guard lock(agent_.mutex);
    ++agent_.made;
  }
  bool open() override {
    const FakeAgent::Inside in(agent_);
    const std::lock_guard lock(agent_.mutex);
    if (Clock::now() < agent_.busyUntil) {
      return false;
    }
    ++agent_.opens;
    agent_.replies.clear();
    return true;
  }
  void close() noexcept override {
    const std::lock_guard lock(agent_.mutex);
    ++agent_.closes;
  }
  void send(const std::string &line) override {
    const FakeAgent::Inside in(agent_);
    const auto request = nlohmann::json::parse(line);
    nlohmann::json reply = {{"id", request["id"]}, {"ok", true}};
    if (request.contains("payload")) {
      reply["echo"] = request["payload"];
    }
    const std::lock_guard lock(agent_.mutex);
    agent_.replies.emplace_back(Clock::now() + agent_.delay, reply.dump() + "\n");
  }
  bool receive(std::string &into) override {
    const FakeAgent::Inside in(agent_);
    const std::lock_guard lock(agent_.mutex);
    if (agent_.fail) {
      return false;
    }
    while (!agent_.replies.empty() && agent_.replies.front().first <= Clock::now()) {
      into += agent_.replies.front().second;
      agent_.replies.pop_front();
    }
    return true;
  }
  [[nodiscard]] std::string why() const override { return "stream had I/O failure"; }
  bool peerListening() override { return true; }
  void poke() override {}

private:
  FakeAgent &agent_;
};

class AgentChannelTest : public ::testing::Test {
protected:
  AgentChannels::Lease lease(const std::string &key = "test:///default 1") {
    return channels_.acquire(key, "r1", [this] { return std::make_unique<FakeTransport>(agent_); });
  }
  static nlohmann::json ask(AgentChannels::Lease &l, const std::string &payload,
                            std::chrono::milliseconds timeout = 2s) {
    return l->request({{"cmd", "echo"}, {"payload", payload}}, timeout, 1000ms);
  }

  FakeAgent agent_;
  AgentChannels channels_;
};

TEST_F(AgentChannelTest, UsersOfOneRouterShareOneChannelUntilTheLastLetsGo) {
  {
    auto a = lease();
    auto b = lease();
    auto other = lease("test:///default 2");
    EXPECT_EQ(&*a, &*b);
    EXPECT_NE(&*a, &*other);
    EXPECT_EQ(channels_.size(), 2U);
    EXPECT_EQ(ask(a, "x")["echo"], "x");
    EXPECT_EQ(ask(b, "y")["echo"], "y");
    EXPECT_EQ(agent_.opens, 1) << "the second user reuses the open channel";
    { auto moved = std::move(b); }
    EXPECT_EQ(channels_.size(), 2U) << "a still holds it";
    EXPECT_EQ(agent_.closes, 0);
  }
  EXPECT_EQ(channels_.size(), 0U);
  EXPECT_EQ(agent_.closes, 1) << "closed when the last user let go";
  auto again = lease();
  EXPECT_EQ(ask(again, "z")["echo"], "z");
  EXPECT_EQ(agent_.opens, 2);
}

TEST_F(AgentChannelTest, ConcurrentRequestsAreSerialisedAndEachGetsItsReply) {
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto l = lease(); // a user of its own, as LinkControl and OsrdClient are
      for (int i = 0; i < 40; ++i) {
        const std::string payload = std::to_string(t) + "-" + std::to_string(i);
        try {
          if (ask(l, payload, 5s)["echo"] != payload) {
            ++wrong;
          }
        } catch (const Error &) {
          ++wrong; // lost among another thread's replies
        }
      }
    });
  }
  for (auto &t : threads) {
    t.join();
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(agent_.overlapping, 0) << "two threads used the transport at once";
  EXPECT_EQ(agent_.made, 1);
  EXPECT_EQ(agent_.opens, 1);
}

TEST_F(AgentChannelTest, AChannelHeldElsewhereIsWaitedForWithOneNotice) {
  std::vector<std::string> notices;
  channels_.setNotice([&](const std::string &line) { notices.push_back(line); });
  agent_.busyUntil = Clock::now() + 600ms;
  auto l = lease();
  const auto start = Clock::now();
  EXPECT_EQ(ask(l, "x", 5s)["echo"], "x");
  EXPECT_GE(Clock::now() - start, 600ms);
  EXPECT_EQ(notices, std::vector<std::string>{
                         "waiting for the agent of router 'r1', held by another nvbox process"});
}

TEST_F(AgentChannelTest, AChannelHeldElsewhereFailsAtTheDeadlineInOneLine) {
  agent_.busyUntil = Clock::time_point::max();
  auto l = lease();
  const auto start = Clock::now();
  try {
    (void)ask(l, "x", 700ms);
    FAIL() << "a held channel gave an answer";
  } catch (const Error &e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("the agent of router 'r1' is held by another process: its channel stayed "
                         "busy for 0.7 s",
                         0),
              0U)
        << what;
    EXPECT_EQ(what.find('\n'), std::string::npos);
    EXPECT_FALSE(e.hint().empty());
  }
  const auto took = Clock::now() - start;
  EXPECT_GE(took, 700ms);
  EXPECT_LT(took, 1200ms) << "the wait ends at the request's deadline";
}

TEST_F(AgentChannelTest, AFailedChannelIsOpenedAnewByTheNextRequest) {
  auto l = lease();
  EXPECT_EQ(ask(l, "x")["echo"], "x");
  agent_.fail = true;
  EXPECT_THROW((void)ask(l, "y"), Error);
  EXPECT_EQ(agent_.closes, 1);
  agent_.fail = false;
  EXPECT_EQ(ask(l, "z")["echo"], "z");
  EXPECT_EQ(agent_.opens, 2);
}

TEST_F(AgentChannelTest, ARequestQueuedBehindASlowOneGivesUpAtItsDeadline) {
  agent_.delay = 800ms;
  auto slow = lease();
  auto quick = lease();
  std::thread first([&] { EXPECT_EQ(ask(slow, "slow", 5s)["echo"], "slow"); });
  std::this_thread::sleep_for(100ms);
  const auto start = Clock::now();
  try {
    (void)ask(quick, "quick", 300ms);
    ADD_FAILURE() << "the queued request was answered";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("busy with another request of this process"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(Clock::now() - start, 800ms);
  first.join();
}

} // namespace
} // namespace nvbox
