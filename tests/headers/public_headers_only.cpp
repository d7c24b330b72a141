// Compiled by the `public_headers_standalone` test with only include/ and Eigen on the include
// path: an application using the facade needs neither LibTorch nor OpenCV headers.
#if __has_include(<ATen/ATen.h>) || __has_include(<torch/torch.h>)
#error "LibTorch is on the include path; the test would prove nothing"
#endif
#if __has_include(<opencv2/core.hpp>)
#error "OpenCV is on the include path; the test would prove nothing"
#endif

#include <internvl/error.h>
#include <internvl/index.h>
#include <internvl/inspect.h>
#include <internvl/internvl.h>
#include <internvl/model.h>
#include <internvl/options.h>
#include <internvl/types.h>
#include <internvl/version.h>
#include <internvl/video.h>

int main() {
  internvl::ChatRequest request;
  request.question = "hello";
  internvl::Matrix m(1, 2);
  m << 1, 2;
  return m.cols() == 2 && request.images.empty() ? 0 : 1;
}
