#include <gtest/gtest.h>

#include "tapegrad.h"
