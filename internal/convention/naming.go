package convention

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// MaxNameLength is the longest run or Pod name gyre makes: Pod names end
// up as hostnames and run names in label values, which allow 63
// characters.
const MaxNameLength = 63

// podHashLength is how many hex digits of the run and stage hash a Pod
// name ends with.
const podHashLength = 5

// PodName is the name of the Pod of a stage attempt:
// "<run>-<stage>-<attempt>-<hash>". Run and stage names may hold dashes,
// so without the hash run "deploy" stage "prod-test" and run
// "deploy-prod" stage "test" would share a Pod and one would take the
// other's for its own. The hash is of the run and the stage joined by a
// "/", which no name holds, so it tells every pair apart, and it depends
// on nothing but the names, so a restarted engine finds the same Pod.
func PodName(run, stage string, attempt int32) string {
	return ShortName(run + "-" + stage + "-" + strconv.Itoa(int(attempt)) + "-" + Hash(run+"/"+stage, podHashLength))
}

// GCPodName is the name of a run's GC Pod.
func GCPodName(run string) string {
	return ShortName(run + "-gc")
}

// ShortName returns name unchanged when it fits MaxNameLength, and
// otherwise a prefix of it followed by a hash of the whole, so that
// distinct long names stay distinct and the result stays deterministic.
func ShortName(name string) string {
	if len(name) <= MaxNameLength {
		return name
	}
	hash := Hash(name, 10)
	prefix := strings.TrimRight(name[:MaxNameLength-len(hash)-1], "-.")
	return prefix + "-" + hash
}

// RunName joins a trigger's name and a suffix that tells its runs apart
// (a scheduled time, an event) with a dash. When the result would be
// longer than MaxNameLength, the prefix is cut and a hash of the whole
// prefix keeps runs of different long triggers apart, while the suffix
// stays whole: it is what orders a trigger's runs. With no suffix it is
// the value of LabelTrigger for the trigger.
func RunName(prefix, suffix string) string {
	name := prefix + "-" + suffix
	if suffix == "" {
		name = prefix
	}
	if len(name) <= MaxNameLength {
		return name
	}
	h := Hash(prefix, 8)
	keep := MaxNameLength - len(h) - 1
	if suffix != "" {
		keep -= len(suffix) + 1
	}
	cut := strings.TrimRight(prefix[:max(keep, 1)], "-.")
	if suffix == "" {
		return cut + "-" + h
	}
	return cut + "-" + h + "-" + suffix
}

// Hash returns the first n hex digits of the SHA-256 of s.
func Hash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}
