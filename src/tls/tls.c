/* TLS sessions over memory BIOs (tls.h). */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

struct lr_tls_ctx {
  SSL_CTX *ssl;
  bool verify_peer;
};

struct lr_tls {
  SSL *ssl;
  BIO *in;  /* ciphertext from the peer, read by OpenSSL */
  BIO *out; /* ciphertext OpenSSL wrote, taken by the caller */
  bool established;
  char error[256];
  char subject[256];
};

/* The oldest queued OpenSSL error as text (the queue is then cleared, so a
 * stale error never shows up against a later call). */
static void take_ssl_error(char *buf, size_t len, const char *fallback) {
  unsigned long e = ERR_get_error();
  if (e == 0) {
    snprintf(buf, len, "%s", fallback);
  } else {
    const char *reason = ERR_reason_error_string(e);
    if (reason != NULL)
      snprintf(buf, len, "%s", reason);
    else
      ERR_error_string_n(e, buf, len);
  }
  ERR_clear_error();
}

int lr_tls_ctx_new(const struct lr_tls_ctx_options *o, struct lr_tls_ctx **out, char *err,
                   size_t errlen) {
  char why[200];
  *out = NULL;
  if ((o->cert_file == NULL) != (o->key_file == NULL)) {
    snprintf(err, errlen, "TLS: a certificate needs its key and a key its certificate");
    return RAFT_EINVAL;
  }
  if (o->verify_peer && o->ca_file == NULL) {
    snprintf(err, errlen, "TLS: verifying peers needs a CA file");
    return RAFT_EINVAL;
  }
  ERR_clear_error();
  struct lr_tls_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) return RAFT_ENOMEM;
  c->ssl = SSL_CTX_new(TLS_method());
  if (c->ssl == NULL) {
    free(c);
    snprintf(err, errlen, "TLS: cannot create a context (out of memory?)");
    return RAFT_ENOMEM;
  }
  c->verify_peer = o->verify_peer;
  SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
  /* Memory BIOs: a write may be split by the caller; never renegotiate. */
  SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION);
  if (o->cert_file != NULL) {
    if (SSL_CTX_use_certificate_chain_file(c->ssl, o->cert_file) != 1) {
      take_ssl_error(why, sizeof why, "unreadable");
      snprintf(err, errlen, "TLS: certificate %s: %s", o->cert_file, why);
      goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ssl, o->key_file, SSL_FILETYPE_PEM) != 1) {
      take_ssl_error(why, sizeof why, "unreadable");
      snprintf(err, errlen, "TLS: key %s: %s", o->key_file, why);
      goto fail;
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
      ERR_clear_error();
      snprintf(err, errlen, "TLS: key %s does not match certificate %s", o->key_file, o->cert_file);
      goto fail;
    }
  }
  if (o->ca_file != NULL) {
    if (SSL_CTX_load_verify_locations(c->ssl, o->ca_file, NULL) != 1) {
      take_ssl_error(why, sizeof why, "unreadable");
      snprintf(err, errlen, "TLS: CA file %s: %s", o->ca_file, why);
      goto fail;
    }
  }
  SSL_CTX_set_verify(
      c->ssl, o->verify_peer ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE,
      NULL);
  *out = c;
  return 0;
fail:
  SSL_CTX_free(c->ssl);
  free(c);
  return RAFT_ETLSCONFIG;
}

void lr_tls_ctx_free(struct lr_tls_ctx *ctx) {
  if (ctx == NULL) return;
  SSL_CTX_free(ctx->ssl);
  free(ctx);
}

int lr_tls_new(struct lr_tls_ctx *ctx, enum lr_tls_role role, const char *verify_name,
               struct lr_tls **out) {
  *out = NULL;
  if (ctx == NULL || (role != LR_TLS_CLIENT && role != LR_TLS_SERVER)) return RAFT_EINVAL;
  struct lr_tls *s = calloc(1, sizeof *s);
  if (s == NULL) return RAFT_ENOMEM;
  s->ssl = SSL_new(ctx->ssl);
  s->in = BIO_new(BIO_s_mem());
  s->out = BIO_new(BIO_s_mem());
  if (s->ssl == NULL || s->in == NULL || s->out == NULL) {
    SSL_free(s->ssl);
    BIO_free(s->in);
    BIO_free(s->out);
    free(s);
    ERR_clear_error();
    return RAFT_ENOMEM;
  }
  /* An empty memory BIO means "no data yet", not end of file. */
  BIO_set_mem_eof_return(s->in, -1);
  BIO_set_mem_eof_return(s->out, -1);
  SSL_set_bio(s->ssl, s->in, s->out); /* the SSL owns both now */
  if (role == LR_TLS_CLIENT) {
    SSL_set_connect_state(s->ssl);
    if (verify_name != NULL && verify_name[0] != '\0') {
      SSL_set_tlsext_host_name(s->ssl, verify_name);
      X509_VERIFY_PARAM *p = SSL_get0_param(s->ssl);
      ASN1_OCTET_STRING *ip = a2i_IPADDRESS(verify_name);
      if (ip != NULL) {
        ASN1_OCTET_STRING_free(ip);
        X509_VERIFY_PARAM_set1_ip_asc(p, verify_name);
      } else {
        X509_VERIFY_PARAM_set1_host(p, verify_name, 0);
      }
      ERR_clear_error();
    }
  } else {
    SSL_set_accept_state(s->ssl);
  }
  *out = s;
  return 0;
}

void lr_tls_free(struct lr_tls *s) {
  if (s == NULL) return;
  SSL_free(s->ssl); /* frees both BIOs */
  free(s);
}

int lr_tls_feed(struct lr_tls *s, const void *data, size_t len) {
  while (len > 0) {
    int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
    int n = BIO_write(s->in, data, chunk);
    if (n <= 0) {
      snprintf(s->error, sizeof s->error, "out of memory buffering TLS input");
      return RAFT_ENOMEM;
    }
    data = (const char *)data + n;
    len -= (size_t)n;
  }
  return 0;
}

/* Classifies a failed SSL_* call; fills s->error. */
static int fail(struct lr_tls *s, int ret, int during) {
  int e = SSL_get_error(s->ssl, ret);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return RAFT_ETLSAGAIN;
  }
  if (e == SSL_ERROR_ZERO_RETURN) {
    snprintf(s->error, sizeof s->error, "the peer closed the TLS session");
    ERR_clear_error();
    return RAFT_ETLSCLOSED;
  }
  long vr = SSL_get_verify_result(s->ssl);
  char why[200];
  take_ssl_error(why, sizeof why,
                 e == SSL_ERROR_SYSCALL ? "unexpected end of stream" : "protocol error");
  if (vr != X509_V_OK && during == RAFT_ETLSHANDSHAKE) {
    snprintf(s->error, sizeof s->error, "certificate verify failed: %s",
             X509_verify_cert_error_string(vr));
    return RAFT_ETLSVERIFY;
  }
  snprintf(s->error, sizeof s->error, "%s", why);
  return during;
}

int lr_tls_handshake(struct lr_tls *s) {
  if (s->established) return 0;
  ERR_clear_error();
  int ret = SSL_do_handshake(s->ssl);
  if (ret == 1) {
    s->established = true;
    return 0;
  }
  return fail(s, ret, RAFT_ETLSHANDSHAKE);
}

bool lr_tls_established(const struct lr_tls *s) {
  return s->established;
}

int lr_tls_read(struct lr_tls *s, void *buf, size_t cap, size_t *got) {
  *got = 0;
  if (!s->established) return RAFT_ETLSSTATE;
  if (cap == 0) return 0;
  ERR_clear_error();
  size_t n = 0;
  int ret = SSL_read_ex(s->ssl, buf, cap, &n);
  if (ret == 1) {
    *got = n;
    return 0;
  }
  int rv = fail(s, ret, RAFT_ETLSPROTOCOL);
  return rv == RAFT_ETLSAGAIN ? 0 : rv;
}

int lr_tls_write(struct lr_tls *s, const void *data, size_t len) {
  if (!s->established) return RAFT_ETLSSTATE;
  while (len > 0) {
    ERR_clear_error();
    size_t n = 0;
    int ret = SSL_write_ex(s->ssl, data, len, &n);
    if (ret != 1) { /* a memory BIO never asks to wait: this is a real error */
      int rv = fail(s, ret, RAFT_ETLSPROTOCOL);
      return rv == RAFT_ETLSAGAIN ? RAFT_ETLSPROTOCOL : rv;
    }
    data = (const char *)data + n;
    len -= n;
  }
  return 0;
}

void lr_tls_shutdown(struct lr_tls *s) {
  if (s->established) {
    SSL_shutdown(s->ssl);
    ERR_clear_error();
  }
}

size_t lr_tls_pending(const struct lr_tls *s) {
  return BIO_ctrl_pending(s->out);
}

size_t lr_tls_take(struct lr_tls *s, void *buf, size_t cap) {
  if (cap == 0) return 0;
  int chunk = cap > (1u << 30) ? (1 << 30) : (int)cap;
  int n = BIO_read(s->out, buf, chunk);
  return n > 0 ? (size_t)n : 0;
}

const char *lr_tls_error(const struct lr_tls *s) {
  return s->error;
}

const char *lr_tls_peer_subject(struct lr_tls *s) {
  if (s->subject[0] == '\0' && s->established) {
    X509 *cert = SSL_get1_peer_certificate(s->ssl);
    if (cert != NULL) {
      X509_NAME_oneline(X509_get_subject_name(cert), s->subject, sizeof s->subject);
      X509_free(cert);
    }
  }
  return s->subject;
}
