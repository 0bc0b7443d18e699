// A tiny gRPC service for the gRPC examples, tests and bench, defined by hand (JSON messages, no .proto):
// Unary answers one message, Stream answers each message of a bidirectional stream. Every answer carries
// the caller's SPIFFE ID and certificate serial as the server saw them.
import * as grpc from '@grpc/grpc-js';
import type { X509Source } from '@svid-operator/mtls';
import { callerSpiffeId } from '@svid-operator/mtls/grpc';

export interface Ping {
  n: number;
}
export interface Pong {
  n: number;
  caller: string;
  callerSerial: string;
}

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as never,
};

export const echoService = {
  unary: {
    path: '/svid.test.Echo/Unary',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
  stream: {
    path: '/svid.test.Echo/Stream',
    requestStream: true,
    responseStream: true,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpc.ServiceDefinition;

const serialOf = (call: { getAuthContext(): { sslPeerCertificate?: { serialNumber: string } } }) =>
  call.getAuthContext().sslPeerCertificate?.serialNumber.toLowerCase() ?? '';

/** The handlers; the caller's SPIFFE ID is read as verified against `source`'s bundles. */
export function echoHandlers(source: X509Source): grpc.UntypedServiceImplementation {
  return {
    unary: (call: grpc.ServerUnaryCall<Ping, Pong>, cb: grpc.sendUnaryData<Pong>) => {
      cb(null, {
        n: call.request.n,
        caller: callerSpiffeId(call, source) ?? '',
        callerSerial: serialOf(call),
      });
    },
    stream: (call: grpc.ServerDuplexStream<Ping, Pong>) => {
      call.on('data', (p: Ping) =>
        call.write({ n: p.n, caller: callerSpiffeId(call, source) ?? '', callerSerial: serialOf(call) }),
      );
      call.on('end', () => call.end());
    },
  };
}

export const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');
export type EchoClientType = InstanceType<typeof EchoClient> & {
  unary(req: Ping, cb: (err: grpc.ServiceError | null, res?: Pong) => void): grpc.ClientUnaryCall;
  stream(): grpc.ClientDuplexStream<Ping, Pong>;
};

export function newEchoClient(
  address: string,
  creds: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
): EchoClientType {
  return new EchoClient(address, creds, options) as EchoClientType;
}

export function unary(client: EchoClientType, n: number): Promise<Pong> {
  return new Promise((resolve, reject) =>
    client.unary({ n }, (err, res) => (err ? reject(err) : resolve(res as Pong))),
  );
}

export async function startServer(
  creds: grpc.ServerCredentials,
  source: X509Source,
): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server();
  server.addService(echoService, echoHandlers(source));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, address: `127.0.0.1:${port}` };
}
