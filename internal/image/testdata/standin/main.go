// Command standin stands in for the gyre binary in the image tests: a
// static Linux executable that builds in a second.
package main

func main() {}
