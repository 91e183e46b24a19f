#pragma once
// The engine: tensors, ops, the tape, backward, and the tools beside them (anomaly detection,
// inspection, logging, threads).
#include "autograd/anomaly.h"
#include "autograd/backward.h"
#include "autograd/custom_op.h"
#include "autograd/dtype.h"
#include "autograd/error.h"
#include "autograd/factories.h"
#include "autograd/inspect.h"
#include "autograd/log.h"
#include "autograd/op.h"
#include "autograd/parallel.h"
#include "autograd/shape.h"
#include "autograd/tape.h"
#include "autograd/tensor.h"
