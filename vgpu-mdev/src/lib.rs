//! vGPU slice management (under construction).
