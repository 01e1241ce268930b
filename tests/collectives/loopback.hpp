// tests/collectives/loopback.hpp — a free loopback port for tests whose ranks meet over TCP.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <random>

#include <gtest/gtest.h>

#include "common/fd.hpp"

namespace cohort::test {

// A loopback port nobody holds now, below the kernel's ephemeral range (32768-60999 on
// Linux) and the launcher's MASTER_PORTs (29500 up): the kernel's own pick would be free only
// until the kernel hands the same port to another test's listener or outgoing connection,
// which it does under `ctest -j`. Another test's pick from this range is left to chance,
// one in nine thousand.
inline int free_port() {
  constexpr int kFirst = 20000, kCount = 9500;
  std::random_device device;
  const int start = static_cast<int>(device() % kCount);
  for (int i = 0; i < kCount; ++i) {
    const int port = kFirst + (start + i) % kCount;
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return port;
  }
  ADD_FAILURE() << "no free loopback port in " << kFirst << "-" << kFirst + kCount - 1;
  return 0;
}

}  // namespace cohort::test
