package exec

import "sync"

// inbox keeps what a test server received, for the test to read while
// the server goes on serving.
type inbox[T any] struct {
	mu    sync.Mutex
	items []T
}

func (in *inbox[T]) add(v T) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.items = append(in.items, v)
}

// all returns a copy of what was received so far, in arrival order.
func (in *inbox[T]) all() []T {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]T(nil), in.items...)
}
