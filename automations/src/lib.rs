//! Parley's automations: rhai rules, chatbot flows and scheduled jobs.
//!
//! This crate reaches the rest of Parley only through `parley_engine`. It has
//! no modules yet: the live chat core it builds on comes first.
