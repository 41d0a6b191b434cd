// An OpenID provider on loopback for the console's sign-in in the end-to-end test:
// `oidc-provider` (npm; a certified OpenID Connect implementation), which checks what
// a deployed provider (Cognito's hosted UI, any OIDC provider) checks of an
// authorization-code sign-in: the client and its registered redirect URI, PKCE (S256
// required of a public client), a code used once. Its sign-in page takes any password
// for the accounts below. The ID token carries the claims the API reads (sub, org,
// role), signed RS256 with a key made at start; /jwks serves its public half.
//
//   node web/tests/idp.mjs PORT CONSOLE_REDIRECT_URI

import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';

const [port, redirect] = process.argv.slice(2);
const accounts = {
  'a-7': { org: 'acme', role: 'agent' },
  'x-1': { org: 'acme', role: 'agent' },
};
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e', use: 'sig', alg: 'RS256' };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: 'chat-console',
      token_endpoint_auth_method: 'none',
      redirect_uris: [redirect],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      id_token_signed_response_alg: 'RS256',
    },
  ],
  jwks: { keys: [key] },
  scopes: ['openid', 'chat'],
  claims: { openid: ['sub'], chat: ['org', 'role'] },
  // The scope's claims go into the ID token itself: the API reads only that.
  conformIdTokenClaims: false,
  async findAccount(_ctx, sub) {
    const account = accounts[sub];
    return account && { accountId: sub, claims: async () => ({ sub, ...account }) };
  },
  features: { devInteractions: { enabled: true } },
  // Only the origin the console is served from may call the token endpoint.
  clientBasedCORS: (_ctx, origin, client) => client.redirectUris.some((uri) => new URL(uri).origin === origin),
});
provider.listen(Number(port), '127.0.0.1');
