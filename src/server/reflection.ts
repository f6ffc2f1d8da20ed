import { toBinary } from '@bufbuild/protobuf';
import type { DescEnum, DescExtension, DescFile, DescMessage } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import type { ConnectRouter } from '@connectrpc/connect';
import {
  ServerReflection as ServerReflectionV1,
  file_grpc_reflection_v1_reflection,
} from '@herald/client/gen/grpc/reflection/v1/reflection_pb';
import {
  ServerReflection as ServerReflectionV1alpha,
  file_grpc_reflection_v1alpha_reflection,
} from '@herald/client/gen/grpc/reflection/v1alpha/reflection_pb';

/**
 * The request and response of ServerReflectionInfo, typed by shape: v1 and v1alpha messages differ
 * only in their package, so one implementation serves both.
 */
interface ReflectionRequest {
  host: string;
  messageRequest:
    | {
        case:
          'fileByFilename' | 'fileContainingSymbol' | 'allExtensionNumbersOfType' | 'listServices';
        value: string;
      }
    | {
        case: 'fileContainingExtension';
        value: { containingType: string; extensionNumber: number };
      }
    | { case: undefined; value?: undefined };
}

type ReflectionAnswer =
  | { case: 'fileDescriptorResponse'; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: 'allExtensionNumbersResponse';
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: 'listServicesResponse'; value: { service: { name: string }[] } }
  | { case: 'errorResponse'; value: { errorCode: number; errorMessage: string } };

interface ReflectionResponse {
  validHost: string;
  originalRequest: ReflectionRequest;
  messageResponse: ReflectionAnswer;
}

interface ReflectionIndex {
  readonly services: readonly string[];
  readonly filesByName: ReadonlyMap<string, DescFile>;
  readonly filesBySymbol: ReadonlyMap<string, DescFile>;
  /** Extendee type name → extension number → declaring file. */
  readonly extensions: ReadonlyMap<string, ReadonlyMap<number, DescFile>>;
  readonly messages: ReadonlySet<string>;
  readonly serialized: ReadonlyMap<DescFile, Uint8Array>;
}

/**
 * Registers gRPC server reflection, both `grpc.reflection.v1` and `grpc.reflection.v1alpha`, so
 * `buf curl`, grpcurl and grpcui work without a local schema. Lists every service declared in
 * `files` (the reflection files themselves are added); answers file and symbol queries from those
 * files and everything they import.
 */
export function registerReflection(router: ConnectRouter, files: readonly DescFile[]): void {
  const index = createReflectionIndex([
    ...files,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
  ]);
  const serverReflectionInfo = (
    requests: AsyncIterable<ReflectionRequest>,
  ): AsyncIterable<ReflectionResponse> => answerAll(requests, index);
  router.service(ServerReflectionV1, { serverReflectionInfo });
  router.service(ServerReflectionV1alpha, { serverReflectionInfo });
}

async function* answerAll(
  requests: AsyncIterable<ReflectionRequest>,
  index: ReflectionIndex,
): AsyncGenerator<ReflectionResponse> {
  for await (const request of requests) {
    yield {
      validHost: request.host,
      originalRequest: copyRequest(request),
      messageResponse: answer(request.messageRequest, index),
    };
  }
}

function answer(
  query: ReflectionRequest['messageRequest'],
  index: ReflectionIndex,
): ReflectionAnswer {
  switch (query.case) {
    case 'listServices':
      return {
        case: 'listServicesResponse',
        value: { service: index.services.map((name) => ({ name })) },
      };
    case 'fileByFilename': {
      const file = index.filesByName.get(query.value);
      return file ? fileAnswer(file, index) : notFound(`file not found: ${query.value}`);
    }
    case 'fileContainingSymbol': {
      const file = index.filesBySymbol.get(stripLeadingDot(query.value));
      return file ? fileAnswer(file, index) : notFound(`symbol not found: ${query.value}`);
    }
    case 'fileContainingExtension': {
      const { containingType, extensionNumber } = query.value;
      const file = index.extensions.get(stripLeadingDot(containingType))?.get(extensionNumber);
      return file
        ? fileAnswer(file, index)
        : notFound(`extension not found: ${containingType} ${extensionNumber}`);
    }
    case 'allExtensionNumbersOfType': {
      const baseTypeName = stripLeadingDot(query.value);
      if (!index.messages.has(baseTypeName)) return notFound(`type not found: ${query.value}`);
      const numbers = index.extensions.get(baseTypeName)?.keys() ?? [];
      return {
        case: 'allExtensionNumbersResponse',
        value: { baseTypeName, extensionNumber: [...numbers] },
      };
    }
    case undefined:
      return {
        case: 'errorResponse',
        value: { errorCode: Code.InvalidArgument, errorMessage: 'message_request is not set' },
      };
  }
}

/** The file first, then everything it imports, transitively; each once. */
function fileAnswer(file: DescFile, index: ReflectionIndex): ReflectionAnswer {
  const closure = new Set<DescFile>();
  const visit = (f: DescFile): void => {
    if (closure.has(f)) return;
    closure.add(f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  const fileDescriptorProto = [...closure].map(
    (f) => index.serialized.get(f) ?? toBinary(FileDescriptorProtoSchema, f.proto),
  );
  return { case: 'fileDescriptorResponse', value: { fileDescriptorProto } };
}

function notFound(errorMessage: string): ReflectionAnswer {
  return { case: 'errorResponse', value: { errorCode: Code.NotFound, errorMessage } };
}

// The request arrives as a v1 or v1alpha message; the copy drops the nested message's type name so
// it can be echoed back in either version's response.
function copyRequest({ host, messageRequest }: ReflectionRequest): ReflectionRequest {
  if (messageRequest.case === 'fileContainingExtension') {
    const { containingType, extensionNumber } = messageRequest.value;
    return {
      host,
      messageRequest: { case: messageRequest.case, value: { containingType, extensionNumber } },
    };
  }
  return { host, messageRequest };
}

function stripLeadingDot(name: string): string {
  return name.startsWith('.') ? name.slice(1) : name;
}

function createReflectionIndex(roots: readonly DescFile[]): ReflectionIndex {
  const services = new Set<string>();
  const filesByName = new Map<string, DescFile>();
  const filesBySymbol = new Map<string, DescFile>();
  const extensions = new Map<string, Map<number, DescFile>>();
  const messages = new Set<string>();
  const serialized = new Map<DescFile, Uint8Array>();

  const addSymbol = (name: string, file: DescFile): void => {
    if (!filesBySymbol.has(name)) filesBySymbol.set(name, file);
  };
  const addEnum = (desc: DescEnum, scope: string): void => {
    addSymbol(desc.typeName, desc.file);
    for (const value of desc.values) {
      // Protobuf scopes enum values as siblings of their enum; people also write Enum.VALUE.
      addSymbol(qualify(scope, value.name), desc.file);
      addSymbol(`${desc.typeName}.${value.name}`, desc.file);
    }
  };
  const addExtension = (desc: DescExtension): void => {
    addSymbol(desc.typeName, desc.file);
    let byNumber = extensions.get(desc.extendee.typeName);
    if (!byNumber) {
      byNumber = new Map();
      extensions.set(desc.extendee.typeName, byNumber);
    }
    byNumber.set(desc.number, desc.file);
  };
  const addMessage = (desc: DescMessage): void => {
    messages.add(desc.typeName);
    addSymbol(desc.typeName, desc.file);
    for (const member of [...desc.fields, ...desc.oneofs]) {
      addSymbol(`${desc.typeName}.${member.name}`, desc.file);
    }
    desc.nestedMessages.forEach(addMessage);
    // protobuf-es hides synthetic map-entry messages from nestedMessages; they are still symbols.
    for (const nested of desc.proto.nestedType)
      addSymbol(`${desc.typeName}.${nested.name}`, desc.file);
    desc.nestedEnums.forEach((e) => addEnum(e, desc.typeName));
    desc.nestedExtensions.forEach(addExtension);
  };
  const addFile = (file: DescFile): void => {
    const name = file.proto.name;
    if (filesByName.has(name)) return;
    filesByName.set(name, file);
    serialized.set(file, toBinary(FileDescriptorProtoSchema, file.proto));
    file.dependencies.forEach(addFile);
    file.messages.forEach(addMessage);
    file.enums.forEach((e) => addEnum(e, file.proto.package));
    file.extensions.forEach(addExtension);
    for (const service of file.services) {
      addSymbol(service.typeName, file);
      for (const method of service.methods) addSymbol(`${service.typeName}.${method.name}`, file);
    }
  };

  for (const file of roots) {
    addFile(file);
    for (const service of file.services) services.add(service.typeName);
  }
  return {
    services: [...services],
    filesByName,
    filesBySymbol,
    extensions,
    messages,
    serialized,
  };
}

function qualify(scope: string, name: string): string {
  return scope === '' ? name : `${scope}.${name}`;
}
