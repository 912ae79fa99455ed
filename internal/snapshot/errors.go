package snapshot

import "errors"

// ErrCorrupt wraps every reason a file cannot be used.
var ErrCorrupt = errors.New("snapshot is corrupt or not a podpin state file")
