/* SPDX-License-Identifier: MIT */
#include "image/catalog.h"
