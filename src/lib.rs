//! shmchan
fn _x() {}
