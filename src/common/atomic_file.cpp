#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/check.h"

namespace internvl {

void write_all(int fd, const void* data, std::size_t size, const std::string& path) {
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, bytes, size);
    if (n < 0 && errno == EINTR) continue;
    INTERNVL_CHECK(n > 0, Error, "cannot write ", path, ": ", std::strerror(errno));
    bytes += n;
    size -= static_cast<std::size_t>(n);
  }
}

void write_file_atomically(const std::string& path, const std::function<void(int fd)>& write) {
  INTERNVL_CHECK(!path.empty(), InvalidArgument, "output path is empty");
  std::vector<char> temp(path.begin(), path.end());
  const std::string suffix = ".tmp.XXXXXX";
  temp.insert(temp.end(), suffix.begin(), suffix.end());
  temp.push_back('\0');
  const int fd = ::mkstemp(temp.data());
  INTERNVL_CHECK(fd >= 0, Error, "cannot create a temporary file next to ", path, ": ", std::strerror(errno));
  const std::string temp_path(temp.data());
  try {
    write(fd);
    INTERNVL_CHECK(::fsync(fd) == 0, Error, "cannot flush ", path, ": ", std::strerror(errno));
    ::fchmod(fd, 0644);
    INTERNVL_CHECK(::close(fd) == 0, Error, "cannot close ", path, ": ", std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(temp_path.c_str());
    throw;
  }
  if (::rename(temp_path.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path.c_str());
    INTERNVL_THROW(Error, "cannot move the new file into place at ", path, ": ", std::strerror(err));
  }
}

}  // namespace internvl
