package native

import "github.com/lineaged/lineaged/sink/internal/shared"

// SharedAncestry keeps the encoded ancestry of recent events by the
// identity of their ancestry slice (sink/internal/shared): an ancestry seen
// twice is encoded once and copied into the events after. An ancestry
// whose strings held invalid UTF-8 is never kept (its marks belong to each
// event). One SharedAncestry serves one Encoder configuration; it is safe
// for concurrent use.
type SharedAncestry = shared.Ancestries

// NewSharedAncestry returns an empty SharedAncestry.
func NewSharedAncestry() *SharedAncestry { return shared.New() }

// partAncestry is the one part the native format keeps: the ancestry array.
const partAncestry shared.Part = 0
