#include "kernels/cuda_graph.h"

#include <cstdlib>
#include <cstring>

#include "common/check.h"
#include "kernels/cuda_ops.h"

#ifdef INTERNVL_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace internvl::kernels {

bool cuda_graphs_enabled() {
  const char* env = std::getenv("INTERNVL_CUDA_GRAPHS");
  return cuda_graphs_built() && cuda_kernels_enabled() && !(env != nullptr && std::strcmp(env, "0") == 0);
}

#ifdef INTERNVL_WITH_CUDA

bool cuda_graphs_built() { return true; }

struct CudaGraph::State {
  at::cuda::CUDAGraph graph;
  bool captured = false;
};

CudaGraph::CudaGraph() : state_(std::make_unique<State>()) {}

CudaGraph::~CudaGraph() {
  // A replay may still be running (the decode loop queues a step it then discards): let it finish
  // before the graph and its memory pool go.
  if (state_->captured) {
    try {
      at::cuda::getCurrentCUDAStream().synchronize();
    } catch (...) {
    }
  }
}

bool CudaGraph::captured() const { return state_->captured; }

void CudaGraph::warm_up_and_capture(const std::function<void()>& body) {
  INTERNVL_CHECK(!state_->captured, Error, "CudaGraph: already captured");
  const auto caller = at::cuda::getCurrentCUDAStream();
  const auto side = at::cuda::getStreamFromPool();
  // The side stream starts after everything the caller queued (the prefill, the cache writes).
  at::cuda::CUDAEvent ready;
  ready.record(caller);
  ready.block(side);
  {
    c10::cuda::CUDAStreamGuard guard(side);
    body();  // warm-up: a real step
    state_->graph.capture_begin();
    try {
      body();
    } catch (const std::exception& e) {
      // End the capture so the stream is usable again; the graph itself is discarded.
      try {
        state_->graph.capture_end();
      } catch (...) {
      }
      INTERNVL_THROW(Error, "CUDA graph capture failed: ", e.what());
    }
    state_->graph.capture_end();
  }
  // The caller's later work (reading the warm-up results, replays) waits for the side stream.
  at::cuda::CUDAEvent done;
  done.record(side);
  done.block(caller);
  state_->captured = true;
}

void CudaGraph::replay() {
  INTERNVL_CHECK(state_->captured, Error, "CudaGraph: replay before capture");
  state_->graph.replay();
}

#else  // built without CUDA

bool cuda_graphs_built() { return false; }

struct CudaGraph::State {};

CudaGraph::CudaGraph() : state_(std::make_unique<State>()) {}
CudaGraph::~CudaGraph() = default;
bool CudaGraph::captured() const { return false; }

void CudaGraph::warm_up_and_capture(const std::function<void()>&) {
  INTERNVL_THROW(UnsupportedError, "CUDA graphs: this build of the library has no CUDA (INTERNVL_WITH_CUDA=OFF)");
}

void CudaGraph::replay() {
  INTERNVL_THROW(UnsupportedError, "CUDA graphs: this build of the library has no CUDA (INTERNVL_WITH_CUDA=OFF)");
}

#endif

}  // namespace internvl::kernels
