//! Long-form guides: how to write migrations, run them, check them before a release, and
//! what the crate promises. They are documentation only; nothing here is code to call.

pub mod file_format {
    #![doc = include_str!("file_format.md")]
}

pub mod operations {
    #![doc = include_str!("operations.md")]
}

pub mod cli {
    #![doc = include_str!("cli.md")]
}

pub mod testing {
    #![doc = include_str!("testing.md")]
}

pub mod release_checks {
    #![doc = include_str!("release_checks.md")]
}

pub mod phases {
    #![doc = include_str!("phases.md")]
}

pub mod squash {
    #![doc = include_str!("squash.md")]
}

pub mod sets {
    #![doc = include_str!("sets.md")]
}

pub mod fleet {
    #![doc = include_str!("fleet.md")]
}

pub mod deployment {
    #![doc = include_str!("deployment.md")]
}

pub mod reliability {
    #![doc = include_str!("reliability.md")]
}

pub mod performance {
    #![doc = include_str!("performance.md")]
}
