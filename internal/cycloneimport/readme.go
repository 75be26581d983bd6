package cycloneimport

import (
	"fmt"
	"strings"
)

// readme is the README of an imported repository: what is where, the
// steps left to the user, and everything the import could not carry over.
func readme(rep *Report, o Options) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	names := make([]string, len(rep.Tenants))
	for i, t := range rep.Tenants {
		names[i] = t.Tenant
	}
	p("# Pipelines imported from Cyclone")
	p("")
	p("`gyre import` wrote this repository from the Cyclone tenants %s.", strings.Join(names, ", "))
	p("")
	p("| path | what it holds |")
	p("|---|---|")
	p("| `tenants/<tenant>/base/` | the tenant's Cyclone objects, one file per kind: gyre applies them to `cyclone-<tenant>` |")
	p("| `%s/` | the Repository and the Tenants, to apply once: `kubectl apply -k %s` |", GyreDir, GyreDir)
	p("| `%s/<namespace>/` | Secrets, without their values, and what stage Pods read in the worker namespace: applied by hand, never by gyre |", ByHandDir)
	p("| `%s/<tenant>/` | objects gyre's render refused: fix them and move them back |", LeftOutDir)
	p("")
	p("## Next steps")
	p("")
	p("1. `gyre validate --tenants %s/tenants.yaml .` renders every tenant as gyre will, at its Tenant's level and scheduling.", GyreDir)
	if o.RepoURL == "" {
		p("2. Push this directory to a Git repository and set its URL as `spec.url` in `%s/repository.yaml`.", GyreDir)
	} else {
		p("2. Push this directory to %s, branch main.", o.RepoURL)
	}
	p("3. `kubectl apply -k %s` on the cluster gyre runs on, and wait for the Tenants: `kubectl wait --for=condition=Ready tenant --all`.", GyreDir)
	p("4. Apply what `%s/` holds: fill in each Secret's `%s` values and `kubectl apply -f` it (or, for the `.age` files `--age-recipient` wrote, `age -d -i KEY FILE.age | kubectl apply -f -`). Do not commit values.", ByHandDir, FillMe)
	p("5. Point each SCM webhook at gyre: `POST https://<gyre>/webhooks/cyclone-<tenant>`, signed with the trigger Secret's `webhookSecret`.")
	p("")
	p("## Not carried over as it was")
	p("")
	if len(rep.Notes) == 0 {
		p("Nothing: every object was carried over unchanged.")
	}
	for _, n := range rep.Notes {
		p("- %s — %s", n.Action, n.String())
	}
	return b.String()
}
