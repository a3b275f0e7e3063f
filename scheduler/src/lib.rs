//! GPU context scheduler (under construction).
