//! A retired log touches no file by path, so its directory can be moved away and reused.

use std::time::{Duration, SystemTime};

use rivulet_storage::{PartitionLog, StorageError};

use crate::fixture::{batch, dir_contents, offsets, read_all, small_config};

#[test]
fn a_retired_log_refuses_writes_and_leaves_its_directory_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config().with_retention_bytes(Some(1));
    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    for i in 0..20 {
        log.append(&mut batch(5, i * 10, 100)).unwrap();
    }
    let end = log.log_end_offset();
    log.retire();
    let before = dir_contents(dir.path());

    assert!(matches!(
        log.append(&mut batch(1, 0, 10)),
        Err(StorageError::Retired { .. })
    ));
    assert!(matches!(log.roll(), Err(StorageError::Retired { .. })));
    assert!(matches!(
        log.truncate_to(5),
        Err(StorageError::Retired { .. })
    ));
    assert!(matches!(
        log.delete_before(5),
        Err(StorageError::Retired { .. })
    ));
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert!(log.enforce_retention(later).is_err());

    // Reads of what is open keep working.
    assert_eq!(offsets(&read_all(&log, 0)), (0..end).collect::<Vec<_>>());
    log.close().unwrap();
    assert_eq!(
        dir_contents(dir.path()),
        before,
        "a retired log changed its directory"
    );
}
