//! A Runtime API emulator written to AWS's documentation, shared by `lambda-emulator` and `bootstrap invoke`.
