// Package pnsv1 is the Go client of the pns-gateway gRPC API (proto package pns.v1), the
// import path every proto file's go_package names. The generated files (*.pb.go,
// *_grpc.pb.go) are not committed: generate them as ../README.md shows.
package pnsv1
