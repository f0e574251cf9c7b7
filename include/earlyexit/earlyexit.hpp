#pragma once
// earlyexit: early-exit inference scheduling for any forward pass that can be cut into stages.
// The umbrella header: include this one and you have the whole library.

#include "version.hpp"
#include "config.hpp"
#include "error.hpp"
#include "fwd.hpp"
#include "confidence.hpp"
#include "context.hpp"
#include "result.hpp"
#include "head.hpp"
#include "network.hpp"
#include "clock.hpp"
#include "observer.hpp"
#include "policy/concepts.hpp"
#include "policy/static.hpp"
#include "policy/any_policy.hpp"
#include "runner.hpp"
