# Finds every dependency and decides whether CUDA is compiled (INTERNVL_CUDA_ENABLED).

# LibTorch from the PyPI wheel in the project venv (scripts/setup.sh); never Debian's libtorch.
if(NOT Torch_DIR)
  set(_internvl_python "${CMAKE_CURRENT_SOURCE_DIR}/.venv/bin/python")
  if(DEFINED ENV{INTERNVL_VENV})
    set(_internvl_python "$ENV{INTERNVL_VENV}/bin/python")
  endif()
  if(EXISTS "${_internvl_python}")
    execute_process(COMMAND "${_internvl_python}" -c
      "import torch.utils, os; print(os.path.join(torch.utils.cmake_prefix_path, 'Torch'))"
      OUTPUT_VARIABLE _torch_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
    if(_rc EQUAL 0)
      set(Torch_DIR "${_torch_dir}" CACHE PATH "LibTorch CMake package directory")
    endif()
  endif()
endif()

# The wheel's Caffe2 CMake files look for the CUDA toolkit; torch ignores CMAKE_CUDA_ARCHITECTURES.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "8.0;9.0")
endif()
set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
find_package(Torch 2.11 REQUIRED)
# Torch's flags variable carries -D_GLIBCXX_USE_CXX11_ABI; the torch target carries it too.
# Installed tools look for LibTorch where it was found (the project venv or the user's).
list(APPEND CMAKE_INSTALL_RPATH "${TORCH_INSTALL_PREFIX}/lib")

set(INTERNVL_CUDA_ENABLED OFF)
if(INTERNVL_WITH_CUDA STREQUAL "ON" OR INTERNVL_WITH_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(INTERNVL_CUDA_ENABLED ON)
  elseif(INTERNVL_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "INTERNVL_WITH_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
message(STATUS "InternVL: CUDA kernels ${INTERNVL_CUDA_ENABLED}")

find_package(OpenCVModules REQUIRED)
find_package(SentencePiece REQUIRED)
find_package(PCRE2 REQUIRED)     # the BPE pre-tokenizer regex
find_package(utf8proc REQUIRED)  # NFC for the BPE tokenizer
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(nlohmann_json 3 REQUIRED)
find_package(GIF REQUIRED)

set(INTERNVL_FAISS_ENABLED OFF)
if(NOT INTERNVL_WITH_FAISS STREQUAL "OFF")
  find_package(OpenMP QUIET COMPONENTS CXX)  # the faiss package config names OpenMP::OpenMP_CXX
  if(OpenMP_CXX_FOUND)
    find_package(faiss QUIET)
  endif()
  if(faiss_FOUND)
    set(INTERNVL_FAISS_ENABLED ON)
  elseif(INTERNVL_WITH_FAISS STREQUAL "ON")
    message(FATAL_ERROR "INTERNVL_WITH_FAISS=ON but FAISS was not found (apt-get install libfaiss-dev)")
  endif()
endif()
message(STATUS "InternVL: FAISS backends ${INTERNVL_FAISS_ENABLED}")

# FFmpeg's own libraries (Debian libavformat-dev, libavcodec-dev, libswscale-dev, libavutil-dev) for
# video decoding; without them Video input throws UnsupportedError naming the build option.
set(INTERNVL_FFMPEG_ENABLED OFF)
if(NOT INTERNVL_WITH_FFMPEG STREQUAL "OFF")
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(INTERNVL_FFMPEG QUIET IMPORTED_TARGET libavformat libavcodec libswscale libavutil)
  endif()
  if(INTERNVL_FFMPEG_FOUND)
    set(INTERNVL_FFMPEG_ENABLED ON)
  elseif(INTERNVL_WITH_FFMPEG STREQUAL "ON")
    message(FATAL_ERROR "INTERNVL_WITH_FFMPEG=ON but FFmpeg was not found through pkg-config "
      "(apt-get install libavformat-dev libavcodec-dev libswscale-dev libavutil-dev)")
  endif()
endif()
message(STATUS "InternVL: FFmpeg video decoding ${INTERNVL_FFMPEG_ENABLED}")
