// The autodiff recording switch of SKDTensor's `GradMode`, one per thread (C11 `_Thread_local`): two threads
// can run a model with and without recording at the same time. Every op reads it, so the getter is inline and
// is a single thread-local load.
#ifndef CSKDGRADMODE_H
#define CSKDGRADMODE_H

/// Nonzero on a thread while recording is switched off there. Zero-initialised, so every new thread starts with
/// recording on (as the main thread does). Read and written only through the two functions below.
extern _Thread_local int skd_grad_disabled;

/// 1 when ops on the calling thread record backward nodes, 0 inside `noGrad`.
static inline int skd_grad_mode_enabled(void) { return skd_grad_disabled == 0; }

/// Switches recording on (nonzero `enabled`) or off for the calling thread only.
static inline void skd_grad_mode_set_enabled(int enabled) { skd_grad_disabled = enabled ? 0 : 1; }

#endif
