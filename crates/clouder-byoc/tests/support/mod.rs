//! Peers for the BYOC tests: a real docker-registry (clouder-testenv), images pushed to it,
//! HTTPS endpoints with a CA made in the test, and the project's API server.

#![allow(dead_code)]

pub mod images;
