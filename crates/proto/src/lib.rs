//! Rivulet's gRPC API as Rust types: the prost messages and tonic client and server stubs
//! generated from `proto/rivulet/v1/*.proto` at build time, plus the encoded descriptor set
//! that server reflection serves.
//!
//! This is the only crate whose public API exposes generated protobuf types; the server
//! converts them to and from the broker's own types at its edge. Payload fields (`bytes` in the
//! schema) are [`bytes::Bytes`], so large values move without copying. The schema files are the
//! source of truth; `docs/api.md` explains every RPC.
//!
//! Code generation uses protox, so building this crate needs no `protoc` binary.

/// Package `rivulet.v1`: every message, enum and service of the API.
pub mod v1 {
    tonic::include_proto!("rivulet.v1");
}

/// The encoded `FileDescriptorSet` of every file in `proto/rivulet/v1`, imports included, for
/// gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rivulet_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::v1;

    #[test]
    fn null_and_empty_values_survive_encoding_as_different_things() {
        let record = v1::Record {
            offset: 7,
            key: None,
            value: Some(bytes::Bytes::new()),
            ..Default::default()
        };
        let decoded = v1::Record::decode(record.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.key, None);
        assert_eq!(decoded.value.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn descriptor_set_names_both_services() {
        let set = prost_types_free_names(super::FILE_DESCRIPTOR_SET);
        for name in ["rivulet.v1", "Log", "Admin", "log.proto", "admin.proto"] {
            assert!(set.contains(name), "{name} missing from the descriptor set");
        }
    }

    /// The descriptor set's printable runs, enough to check names without decoding it.
    fn prost_types_free_names(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { ' ' })
            .collect()
    }
}
