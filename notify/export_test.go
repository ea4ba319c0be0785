package notify

import "os"

// BreakOutboxWrites makes every later write to o fail, as on a full or
// read-only disk, by swapping its file for a read-only descriptor of the
// same file. The outbox stays open.
func BreakOutboxWrites(o *Outbox) error {
	o.mu <- struct{}{}
	defer func() { <-o.mu }()
	f, err := os.Open(o.path)
	if err != nil {
		return err
	}
	old := o.f
	o.f = f
	return old.Close()
}
