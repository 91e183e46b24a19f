#pragma once
// The engine: tensors, the tape, backward, gradient checking, the op registry and logging.
#include "autograd/dtype.h"
#include "autograd/error.h"
#include "autograd/functional.h"
#include "autograd/gradcheck.h"
#include "autograd/inspect.h"
#include "autograd/log.h"
#include "autograd/parallel.h"
#include "autograd/registry.h"
#include "autograd/shape.h"
#include "autograd/tape.h"
#include "autograd/tensor.h"
