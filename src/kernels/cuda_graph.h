// A captured CUDA graph behind a torch-free-of-CUDA header, so model code can use it in every
// build: capture() records `body` on a side stream (CUDA graphs cannot be captured on the legacy
// default stream) after one eager warm-up run of the same body on that stream (cuBLAS workspaces
// and allocator blocks are set up outside the capture); replay() launches the graph on the
// current stream. Tensors that the body allocates live in the graph's private memory pool and
// stay valid, with the values of the latest replay, as long as this object lives.
#pragma once

#include <functional>
#include <memory>

namespace internvl::kernels {

bool cuda_graphs_built();  // compiled with INTERNVL_WITH_CUDA
// Decode steps are captured as CUDA graphs when the kernels are enabled (cuda_kernels_enabled():
// off by default until verified on a GPU) unless INTERNVL_CUDA_GRAPHS=0.
bool cuda_graphs_enabled();

class CudaGraph {
 public:
  CudaGraph();
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Runs `body` once eagerly (its results are real), then captures it. Throws UnsupportedError
  // without CUDA, Error when the capture fails (e.g. the body synchronises with the host).
  void warm_up_and_capture(const std::function<void()>& body);
  bool captured() const;
  void replay();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace internvl::kernels
