package marker_test

import (
	"fmt"
	"os"
	"time"

	"github.com/quiesce-dev/quiesce/marker"
)

func Example() {
	home, _ := os.MkdirTemp("", "quiesce-home")
	defer os.RemoveAll(home)
	epoch := "boot-1:100" // in production: marker.ProcessEpoch(procRoot)

	req, _ := marker.Write(home, marker.Request{Principal: "ops", Epoch: epoch, SuppressNotification: true})
	st := marker.Read(home, time.Now(), epoch, 0)
	fmt.Println(st.Status, st.Drains(), st.Suppresses())

	// After a restart of the machine the epoch differs: the marker is stale.
	st = marker.Read(home, time.Now(), "boot-2:100", 0)
	fmt.Println(st.Status, st.Drains())

	// Cancelling someone else's drain request is refused.
	_, err := marker.Clear(home, "not-"+req.RequestID)
	fmt.Println(err)

	existed, _ := marker.Clear(home, req.RequestID)
	fmt.Println(existed, marker.Read(home, time.Now(), epoch, 0).Status)
	// Output:
	// active true true
	// stale false
	// marker: request id does not match the active marker
	// true absent
}
