#include "tun_device.hpp"

#include "osr/endpoint.hpp"

#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdexcept>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace nvbox::osr {
namespace {

[[noreturn]] void fail(const std::string &what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

void setIfreqAddr(sockaddr &out, std::uint32_t hostOrder) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(hostOrder);
  std::memcpy(&out, &sin, sizeof sin);
}

} // namespace

TunDevice::TunDevice(const std::string &name, int mtu, std::optional<std::string> cidr,
                     bool offload)
    : name_(name), mtu_(mtu) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    throw std::runtime_error("invalid TUN device name '" + name + "'");
  }
  fd_ = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) {
    fail("cannot open '/dev/net/tun'");
  }
  ifreq req{};
  req.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0));
  name.copy(req.ifr_name, IFNAMSIZ - 1);
  if (::ioctl(fd_, TUNSETIFF, &req) != 0) {
    const int saved = errno;
    ::close(fd_);
    errno = saved;
    fail("cannot create TUN device '" + name + "'");
  }
  vnetHdr_ = offload;
  if (offload) {
    // The header size is 10 (sizeof VirtioNetHdr) unless TUNSETVNETHDRSZ
    // says otherwise; set it anyway in case the device was attached to.
    int hdrSize = static_cast<int>(sizeof(VirtioNetHdr));
    if (::ioctl(fd_, TUNSETVNETHDRSZ, &hdrSize) != 0) {
      const int saved = errno;
      ::close(fd_);
      errno = saved;
      fail("cannot set the vnet header size of '" + name + "'");
    }
    // Without it the kernel completes checksums and segments before the
    // device: correct, only slower. So a refusal is not an error.
    tso_ = ::ioctl(fd_, TUNSETOFFLOAD, static_cast<unsigned long>(TUN_F_CSUM | TUN_F_TSO4)) == 0;
  }
  // Interface settings go through an ordinary socket, as ifconfig does.
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    fail("cannot configure '" + name + "'");
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{sock};
  ifreq cfg{};
  name.copy(cfg.ifr_name, IFNAMSIZ - 1);
  cfg.ifr_mtu = mtu;
  if (::ioctl(sock, SIOCSIFMTU, &cfg) != 0) {
    fail("cannot set the MTU of '" + name + "' to " + std::to_string(mtu));
  }
  if (cidr) {
    const auto prefix = Prefix::parse(*cidr);
    const auto slash = cidr->find('/');
    const auto host = Endpoint::parse(cidr->substr(0, slash) + ":1");
    if (!prefix || !host) {
      throw std::runtime_error("invalid TUN address '" + *cidr + "'");
    }
    setIfreqAddr(cfg.ifr_addr, host->addr);
    if (::ioctl(sock, SIOCSIFADDR, &cfg) != 0) {
      fail("cannot set address '" + *cidr + "' on '" + name + "'");
    }
    const std::uint32_t mask = prefix->len == 0 ? 0 : ~std::uint32_t{0} << (32U - prefix->len);
    setIfreqAddr(cfg.ifr_netmask, mask);
    if (::ioctl(sock, SIOCSIFNETMASK, &cfg) != 0) {
      fail("cannot set the netmask of '" + name + "'");
    }
  }
  if (::ioctl(sock, SIOCGIFFLAGS, &cfg) != 0) {
    fail("cannot read the flags of '" + name + "'");
  }
  cfg.ifr_flags = static_cast<short>(cfg.ifr_flags | IFF_UP | IFF_RUNNING);
  if (::ioctl(sock, SIOCSIFFLAGS, &cfg) != 0) {
    fail("cannot bring up '" + name + "'");
  }
}

TunDevice::~TunDevice() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

void TunDevice::addRoute(const Prefix &prefix) {
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    fail("cannot route '" + prefix.toString() + "' into '" + name_ + "'");
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{sock};
  rtentry route{};
  setIfreqAddr(route.rt_dst, prefix.addr);
  setIfreqAddr(route.rt_genmask, prefix.len == 0 ? 0 : ~std::uint32_t{0} << (32U - prefix.len));
  route.rt_flags = RTF_UP;
  std::string dev = name_; // rt_dev is a non-const char *
  route.rt_dev = dev.data();
  if (::ioctl(sock, SIOCADDRT, &route) != 0 && errno != EEXIST) {
    fail("cannot route '" + prefix.toString() + "' into '" + name_ + "'");
  }
}

std::size_t TunDevice::read(VirtioNetHdr &hdr, std::span<std::uint8_t> buf) {
  hdr = VirtioNetHdr{};
  if (!vnetHdr_) {
    const ssize_t got = ::read(fd_, buf.data(), buf.size());
    return got > 0 ? static_cast<std::size_t>(got) : 0;
  }
  std::array<iovec, 2> iov{{{&hdr, sizeof hdr}, {buf.data(), buf.size()}}};
  const ssize_t got = ::readv(fd_, iov.data(), static_cast<int>(iov.size()));
  if (got < static_cast<ssize_t>(sizeof hdr)) {
    return 0;
  }
  return static_cast<std::size_t>(got) - sizeof hdr;
}

bool TunDevice::write(std::span<const std::uint8_t> packet) {
  if (!vnetHdr_) {
    return ::write(fd_, packet.data(), packet.size()) == static_cast<ssize_t>(packet.size());
  }
  return write(VirtioNetHdr{}, packet);
}

bool TunDevice::write(const VirtioNetHdr &hdr, std::span<const std::uint8_t> packet) {
  if (!vnetHdr_) {
    return hdr == VirtioNetHdr{} && write(packet);
  }
  // writev takes non-const iovecs; nothing is written through them.
  std::array<iovec, 2> iov{{{const_cast<VirtioNetHdr *>(&hdr), sizeof hdr},
                            {const_cast<std::uint8_t *>(packet.data()), packet.size()}}};
  const auto want = static_cast<ssize_t>(sizeof hdr + packet.size());
  return ::writev(fd_, iov.data(), static_cast<int>(iov.size())) == want;
}

} // namespace nvbox::osr
