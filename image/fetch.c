/* SPDX-License-Identifier: MIT */
#include "image/fetch.h"
