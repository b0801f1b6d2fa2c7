// Precompiled header for models/: torch is expensive to parse (about 30 s per
// translation unit on two cores), so it is parsed once for the whole library.
#pragma once
#include <torch/torch.h>
