//! Where to connect: the database URL or environment variables, TLS, and waiting for a
//! server that is still starting. (Being written: see the API contract in the helper's task.)
