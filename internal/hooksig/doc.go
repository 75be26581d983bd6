// Package hooksig checks that a webhook request comes from a sender that
// knows a shared secret: the HMAC-SHA256 signatures GitHub, Gitea and
// Bitbucket put in a header, and the plain tokens GitLab (and gyre's
// Subversion hook) send. It also reads the signed body, capped, since the
// signature covers every byte of it.
//
// Every comparison takes constant time, and an empty secret proves
// nothing. No function returns or logs a secret.
package hooksig
