/* SPDX-License-Identifier: MIT */
#include "image/store.h"
