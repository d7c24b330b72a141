/// @file
/// Umbrella header: all a user needs.
#pragma once

#include "internvl/error.h"
#include "internvl/inspect.h"
#include "internvl/model.h"
#include "internvl/options.h"
#include "internvl/types.h"
#include "internvl/version.h"
#include "internvl/video.h"
