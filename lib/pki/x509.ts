// The one import of @peculiar/x509 (X.509 and PKCS#8 over WebCrypto). Its 2.x line resolves
// its internals through tsyringe, which needs the Reflect metadata polyfill loaded first; and it
// must be told to use the runtime's WebCrypto. Every pki module imports x509 from here.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(crypto);

export { x509 };
