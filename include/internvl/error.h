/// @file
/// Every exception the library throws derives from internvl::Error.
#pragma once

#include <stdexcept>
#include <string>

namespace internvl {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A checkpoint file (safetensors, index) is missing, truncated, corrupt or does not fit the model.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

/// config.json (or another configuration file) is missing, malformed or contradictory.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// An image cannot be read or decoded.
class ImageError : public Error {
 public:
  using Error::Error;
};

/// A caller passed an argument outside its documented range.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// The loaded model family does not offer the requested operation.
class UnsupportedError : public Error {
 public:
  using Error::Error;
};

/// The machine lacks a resource the request needs (e.g. memory for the weights), checked before
/// the work starts rather than failing (or being killed) part-way.
class ResourceError : public Error {
 public:
  using Error::Error;
};

}  ///< namespace internvl
