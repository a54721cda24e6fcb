//! The tasks that relay one channel's traffic: target to client, and client to target on the
//! channels the target opened, recording every byte.

use custos_trail::{Direction, Record};
use russh::{ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, client, server};

use crate::recorder::Recorder;

/// Forwards what the target sends on one channel to the client, recording it.
pub(super) async fn relay_upstream(
    mut upstream: ChannelReadHalf,
    client: server::Handle,
    id: ChannelId,
    channel: u32,
    recorder: Recorder,
) {
    while let Some(message) = upstream.wait().await {
        if recorder.has_failed() {
            break;
        }
        match message {
            ChannelMsg::Data { data } => {
                recorder
                    .record(Record::Data {
                        channel,
                        direction: Direction::ServerToClient,
                        extended: false,
                        bytes: data.clone(),
                    })
                    .await;
                if client.data(id, data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::ExtendedData { data, ext } => {
                recorder
                    .record(Record::Data {
                        channel,
                        direction: Direction::ServerToClient,
                        extended: true,
                        bytes: data.clone(),
                    })
                    .await;
                if client.extended_data(id, ext, data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::ExitStatus { exit_status } => {
                recorder
                    .record(Record::ExitStatus {
                        channel,
                        code: exit_status,
                    })
                    .await;
                let _ = client.exit_status_request(id, exit_status).await;
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                recorder
                    .record(Record::ExitSignal {
                        channel,
                        signal: format!("{signal_name:?}"),
                        core_dumped,
                        message: error_message.clone(),
                    })
                    .await;
                let _ = client
                    .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                    .await;
            }
            ChannelMsg::Eof => {
                recorder.record(Record::ChannelEof { channel }).await;
                let _ = client.eof(id).await;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    recorder.record(Record::ChannelClose { channel }).await;
    let _ = client.close(id).await;
}

/// Forwards what the client sends on a channel the target opened (remote forward, X11, agent)
/// to the target, recording it. The close is recorded by `relay_upstream`, which sees the
/// target's answering close.
pub(super) async fn relay_client(
    mut client: ChannelReadHalf,
    target: ChannelWriteHalf<client::Msg>,
    channel: u32,
    recorder: Recorder,
) {
    while let Some(message) = client.wait().await {
        if recorder.has_failed() {
            break;
        }
        match message {
            ChannelMsg::Data { data } => {
                recorder
                    .record(Record::Data {
                        channel,
                        direction: Direction::ClientToServer,
                        extended: false,
                        bytes: data.clone(),
                    })
                    .await;
                if target.data_bytes(data).await.is_err() {
                    break;
                }
            }
            ChannelMsg::Eof => {
                recorder.record(Record::ChannelEof { channel }).await;
                let _ = target.eof().await;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = target.close().await;
}
