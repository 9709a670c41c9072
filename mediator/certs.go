package mediator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certificates for a deployment live in one directory per environment:
// ca.pem/ca-key.pem, server.pem/server-key.pem, and <client>.pem /
// <client>-key.pem per client, whose OU is its role (internal, partner,
// readonly). Keys are ECDSA P-256 (the reference used RSA 4096; P-256 is as
// strong for TLS and far quicker to make).

// ServerName is the name clients expect in the server certificate.
const ServerName = "flows-mediators"

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serialNumber() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func subject(cn, ou string) pkix.Name {
	n := pkix.Name{CommonName: cn, Country: []string{"GB"}, Organization: []string{"Flows"}}
	if ou != "" {
		n.OrganizationalUnit = []string{ou}
	}
	return n
}

// InitCA makes the environment's certificate authority (10 years).
func InitCA(dir, env string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.pem")); err == nil {
		return fmt.Errorf("%s already has a CA; remove it to start over", dir)
	}
	key, err := newKey()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: serialNumber(), Subject: subject("flows-mediators-"+env+" CA", ""),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	if err := writePEM(filepath.Join(dir, "ca-key.pem"), "EC PRIVATE KEY", kd, 0o600); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", der, 0o644)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return nil, nil, fmt.Errorf("no CA in %s (run flows certs init first): %w", dir, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("CA key is not ECDSA")
	}
	return cert, key, nil
}

// Issue makes a certificate signed by dir's CA: name "server" for the
// mediator (SANs localhost, 127.0.0.1 and extra hosts), any other name for
// a client whose OU is role. Valid one year.
func Issue(dir, name, role string, hosts []string) error {
	ca, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	key, err := newKey()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: serialNumber(), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature}
	if name == "server" {
		tmpl.Subject = subject(ServerName, "")
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{ServerName, "localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	} else {
		if _, ok := rolePermissions[role]; !ok {
			return fmt.Errorf("role %q is not internal, partner or readonly", role)
		}
		tmpl.Subject = subject(name, role)
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	if err := writePEM(filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kd, 0o600); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, name+".pem"), "CERTIFICATE", der, 0o644)
}

func caPool(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	return pool, nil
}

// ServerTLS is the mediator's mutual-TLS configuration. A certificate is
// verified when given; a call without one is refused by the interceptor
// with UNAUTHENTICATED (a refused handshake would tell the caller less).
func ServerTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	pool, err := caPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}, nil
}

// ClientTLS is a client's configuration: its certificate (none for a
// client without one) and the CA that signed the mediator's.
func ClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	pool, err := caPool(caFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: ServerName, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
