package scmevent

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// cloudRepo is a repository in a Bitbucket Cloud event.
type cloudRepo struct {
	FullName string `json:"full_name"`
	Links    struct {
		HTML struct {
			Href string `json:"href"`
		} `json:"html"`
	} `json:"links"`
}

// cloudPullRequest is a pull request in a Bitbucket Cloud event.
type cloudPullRequest struct {
	ID     int    `json:"id"`
	State  string `json:"state"`
	Source struct {
		Branch struct {
			Name string `json:"name"`
		} `json:"branch"`
		Commit struct {
			Hash string `json:"hash"`
		} `json:"commit"`
	} `json:"source"`
	Destination struct {
		Branch struct {
			Name string `json:"name"`
		} `json:"branch"`
	} `json:"destination"`
}

// cloudEvent is the part of a Bitbucket Cloud repo:push, pullrequest:… or
// pullrequest:comment_created event gyre reads.
type cloudEvent struct {
	Repository cloudRepo `json:"repository"`
	Push       struct {
		Changes []struct {
			// New is null when the change deleted the branch or tag.
			New *struct {
				Type   string `json:"type"`
				Name   string `json:"name"`
				Target struct {
					Hash string `json:"hash"`
				} `json:"target"`
			} `json:"new"`
			Old *struct {
				Type string `json:"type"`
				Name string `json:"name"`
			} `json:"old"`
		} `json:"changes"`
	} `json:"push"`
	PullRequest cloudPullRequest `json:"pullrequest"`
	Comment     struct {
		ID      int64 `json:"id"`
		Content struct {
			Raw string `json:"raw"`
		} `json:"content"`
	} `json:"comment"`
}

// cloudRef is the full ref of a Bitbucket Cloud branch or tag.
func cloudRef(typ, name string) string {
	switch typ {
	case "branch":
		return "refs/heads/" + name
	case "tag", "annotated_tag":
		return "refs/tags/" + name
	}
	return name
}

func parseCloud(eventType string, body []byte) (Event, error) {
	var p cloudEvent
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, err
	}
	e := Event{Repo: p.Repository.FullName, URLs: cloudURLs(p.Repository)}
	switch eventType {
	case "repo:push":
		// One push may change several refs; the first that still exists
		// is the one built, as one GitHub event names one ref.
		for _, c := range p.Push.Changes {
			if c.New == nil {
				if c.Old != nil && e.Ref == "" {
					e.Ref, e.Deleted = cloudRef(c.Old.Type, c.Old.Name), true
				}
				continue
			}
			e.Ref, e.SHA, e.Deleted = cloudRef(c.New.Type, c.New.Name), c.New.Target.Hash, false
			e.Kind, e.Branch = refKind(e.Ref)
			break
		}
	case "pullrequest:created", "pullrequest:updated":
		pr := p.PullRequest
		if pr.State == "OPEN" {
			e.Kind = KindPullRequest
			e.Ref = "refs/heads/" + pr.Source.Branch.Name
			e.Branch, e.SHA = pr.Destination.Branch.Name, pr.Source.Commit.Hash
		}
	case "pullrequest:comment_created":
		pr := p.PullRequest
		if pr.State == "OPEN" {
			e.Kind = KindPullRequestComment
			e.Ref = "refs/heads/" + pr.Source.Branch.Name
			e.Branch, e.SHA = pr.Destination.Branch.Name, pr.Source.Commit.Hash
			e.Comment, e.CommentID = p.Comment.Content.Raw, strconv.FormatInt(p.Comment.ID, 10)
		}
	}
	return e, nil
}

// cloudURLs are the URLs a Bitbucket Cloud event gives its repository by.
// The event has no clone links, only the web page
// https://bitbucket.org/<workspace>/<slug>; the clone URLs are that with
// .git and git@bitbucket.org:<workspace>/<slug>.git, which a receiver's
// comparison reduces to the web URL and ssh://bitbucket.org/<workspace>/<slug>.
func cloudURLs(r cloudRepo) []string {
	html := r.Links.HTML.Href
	if html == "" {
		return nil
	}
	urls := []string{html}
	if u, err := url.Parse(html); err == nil && r.FullName != "" {
		urls = append(urls, "ssh://"+u.Hostname()+"/"+r.FullName)
	}
	return urls
}

// serverRepo is a repository in a Bitbucket Server event.
type serverRepo struct {
	Slug    string `json:"slug"`
	Project struct {
		Key string `json:"key"`
	} `json:"project"`
	Links struct {
		Clone []struct {
			Href string `json:"href"`
		} `json:"clone"`
	} `json:"links"`
}

// fullName is "PROJECT/slug", as Bitbucket Server's clone paths have it.
func (r serverRepo) fullName() string {
	if r.Slug == "" || r.Project.Key == "" {
		return ""
	}
	return r.Project.Key + "/" + r.Slug
}

// serverRef is one side of a Bitbucket Server pull request.
type serverRef struct {
	ID           string     `json:"id"`
	DisplayID    string     `json:"displayId"`
	LatestCommit string     `json:"latestCommit"`
	Repository   serverRepo `json:"repository"`
}

// serverEvent is the part of a Bitbucket Server repo:refs_changed or pr:…
// event gyre reads.
type serverEvent struct {
	Repository serverRepo `json:"repository"`
	Changes    []struct {
		Ref struct {
			ID        string `json:"id"`
			DisplayID string `json:"displayId"`
			Type      string `json:"type"`
		} `json:"ref"`
		RefID  string `json:"refId"`
		ToHash string `json:"toHash"`
		// Type is ADD, UPDATE or DELETE.
		Type string `json:"type"`
	} `json:"changes"`
	PullRequest struct {
		ID      int       `json:"id"`
		State   string    `json:"state"`
		FromRef serverRef `json:"fromRef"`
		ToRef   serverRef `json:"toRef"`
	} `json:"pullRequest"`
	Comment struct {
		ID   int64  `json:"id"`
		Text string `json:"text"`
	} `json:"comment"`
}

func parseServer(eventType string, body []byte) (Event, error) {
	var p serverEvent
	if err := json.Unmarshal(body, &p); err != nil {
		return Event{}, err
	}
	e := Event{Repo: p.Repository.fullName()}
	for _, c := range p.Repository.Links.Clone {
		e.URLs = append(e.URLs, c.Href)
	}
	pr := p.PullRequest
	switch eventType {
	case "diagnostics:ping":
		e.Kind = KindPing
	case "repo:refs_changed":
		for _, c := range p.Changes {
			ref := c.Ref.ID
			if ref == "" {
				ref = c.RefID
			}
			if c.Type == "DELETE" {
				if e.Ref == "" {
					e.Ref, e.Deleted = ref, true
				}
				continue
			}
			e.Ref, e.SHA, e.Deleted = ref, c.ToHash, false
			e.Kind, e.Branch = refKind(ref)
			break
		}
	case "pr:opened", "pr:from_ref_updated":
		// pr:modified is a new title, description or target branch, not
		// new code: like GitHub's "edited", it fires nothing.
		if pr.State == "OPEN" {
			e.Kind = KindPullRequest
		}
	case "pr:comment:added":
		if pr.State == "OPEN" {
			e.Kind = KindPullRequestComment
			e.Comment, e.CommentID = p.Comment.Text, strconv.FormatInt(p.Comment.ID, 10)
		}
	}
	if strings.HasPrefix(eventType, "pr:") {
		// A pull request event has no top-level repository; the target
		// side's is the one a trigger watches.
		e.Repo = pr.ToRef.Repository.fullName()
		for _, c := range pr.ToRef.Repository.Links.Clone {
			e.URLs = append(e.URLs, c.Href)
		}
	}
	if e.Kind == KindPullRequest || e.Kind == KindPullRequestComment {
		e.Ref = "refs/pull-requests/" + strconv.Itoa(pr.ID) + "/from"
		e.Branch, e.SHA = pr.ToRef.DisplayID, pr.FromRef.LatestCommit
	}
	return e, nil
}
