#pragma once
// Tools built on the ops: gradient checks, jacobian/hessian/hvp/jvp and the op registry's checks.
// (The GoogleTest assertions are tools/gtest.h, target tapegrad::gtest.)
#include "tools/functional.h"
#include "tools/gradcheck.h"
#include "tools/op_registry.h"
