package redistest

import (
	"runtime"
	"sync/atomic"
	"time"
)

// HeapPeak runs fn and returns the highest HeapInuse seen while it ran
// (sampled every 5 ms, after a GC): the bound of a test that says memory
// does not grow with a value's size.
func HeapPeak(fn func()) uint64 {
	runtime.GC()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return peak.Load()
}
