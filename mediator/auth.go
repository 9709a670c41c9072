package mediator

import (
	"context"
	"crypto/x509"

	"github.com/flows-energy/flows/mediator/pb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Roles, from the client certificate's OU, and the methods each may call.
// The names are the full, package-qualified method paths gRPC reports (the
// reference listed short paths and so, enabled, denied every call).
var rolePermissions = map[string]map[string]bool{
	"internal": {
		pb.EmliteMediatorService_ReadElement_FullMethodName:    true,
		pb.EmliteMediatorService_WriteElement_FullMethodName:   true,
		pb.EmliteMediatorService_SendRawMessage_FullMethodName: true,
		pb.InfoService_GetInfo_FullMethodName:                  true,
		pb.InfoService_GetMeters_FullMethodName:                true,
	},
	"partner": {
		pb.EmliteMediatorService_ReadElement_FullMethodName: true,
		pb.InfoService_GetInfo_FullMethodName:               true,
		pb.InfoService_GetMeters_FullMethodName:             true,
	},
	"readonly": {
		pb.InfoService_GetInfo_FullMethodName:   true,
		pb.InfoService_GetMeters_FullMethodName: true,
	},
}

// clientCert returns the verified client certificate of a call.
func clientCert(ctx context.Context) (*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, errNoCert
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, errNoCert
	}
	return info.State.VerifiedChains[0][0], nil
}

// roleOf is a client certificate's role: its first OU ("" for none).
func roleOf(cert *x509.Certificate) string {
	if len(cert.Subject.OrganizationalUnit) == 0 {
		return ""
	}
	return cert.Subject.OrganizationalUnit[0]
}

// authorize lets a call through when the caller's role allows its method.
func authorize(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	cert, err := clientCert(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "Client certificate required.")
	}
	if !rolePermissions[roleOf(cert)][info.FullMethod] {
		return nil, status.Error(codes.PermissionDenied, "Permission denied.")
	}
	return handler(ctx, req)
}
