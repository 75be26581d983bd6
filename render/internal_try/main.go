package main

import (
	"context"
	"fmt"
	"os"

	"github.com/gyreops/gyre/render"
)

func main() {
	root := os.Args[1]
	ts, err := render.Discover(root)
	if err != nil {
		panic(err)
	}
	for _, t := range ts {
		res, err := render.Render(context.Background(), root, t, render.Options{Revision: "main@sha1:abc"})
		if err != nil {
			panic(err)
		}
		fmt.Printf("### %s dir=%s objs=%d digest=%s\n", t, res.Dir, len(res.Objects), res.Digest)
		for _, e := range res.Errors {
			fmt.Println("  ERR", e.Error())
		}
		if len(os.Args) > 2 && os.Args[2] == t.String() {
			render.WriteYAML(os.Stdout, res.Objects)
		}
	}
}
