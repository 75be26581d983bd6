package receiver

import (
	"net/http"

	"github.com/gyreops/gyre/internal/hookmetrics"
)

// observeDelivery counts a push delivery to the Repository receiver, by
// provider and result, once the handler has answered; see
// hookmetrics.Observe. The counter's labels are bounded: never the
// Repository or the pushed ref.
func observeDelivery(w *http.ResponseWriter, req *http.Request) func() {
	return hookmetrics.Observe(w, "repository", func() string {
		e, err := readHeaders(req.Header)
		if err != nil {
			return ""
		}
		return e.provider
	})
}
