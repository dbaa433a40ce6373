//! Parley end to end: real servers on port 0, real WebSocket clients, a real
//! browser. Each test runs on SQLite and on PostgreSQL with its own database.

// In tests a panic is the failure report: unwrapping is the point.
#![allow(clippy::unwrap_used)]

mod access;
mod attachments;
mod automations;
mod browser;
mod browser_admin;
mod browser_app;
mod chat;
mod deliveries;
mod flows;
mod missed;
mod nodes;
mod ops;
mod outbound;
mod people;
mod shared_chats;
mod teams;
mod transfer;
mod widget;
