//! `rivulet.v1.Admin`: topics and consumer groups. Each handler is one broker call plus
//! conversions; the broker checks names, counts and settings and states the rule broken.

use std::sync::Arc;

use rivulet_broker::BrokerError;
use rivulet_proto::v1;
use rivulet_proto::v1::admin_server::Admin;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{State, respond};
use crate::convert;
use crate::error::ApiError;

/// The `rivulet.v1.Admin` service.
pub(crate) struct AdminService {
    state: Arc<State>,
}

impl AdminService {
    pub(crate) fn new(state: Arc<State>) -> Self {
        AdminService { state }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    #[instrument(name = "create_topic", skip_all, fields(
        topic = %request.get_ref().name,
        partitions = request.get_ref().partitions,
    ))]
    async fn create_topic(
        &self,
        request: Request<v1::CreateTopicRequest>,
    ) -> Result<Response<v1::CreateTopicResponse>, Status> {
        let request = request.into_inner();
        let result = async {
            let config = convert::topic_config(request.config)?;
            self.state
                .broker
                .create_topic(&request.name, request.partitions, config)
                .await?;
            Ok(v1::CreateTopicResponse {})
        };
        respond(result.await)
    }

    #[instrument(name = "delete_topic", skip_all, fields(topic = %request.get_ref().name))]
    async fn delete_topic(
        &self,
        request: Request<v1::DeleteTopicRequest>,
    ) -> Result<Response<v1::DeleteTopicResponse>, Status> {
        let name = request.into_inner().name;
        let result = self.state.broker.delete_topic(&name).await;
        respond(
            result
                .map(|()| v1::DeleteTopicResponse {})
                .map_err(ApiError::from),
        )
    }

    #[instrument(name = "list_topics", skip_all)]
    async fn list_topics(
        &self,
        _request: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let broker = &self.state.broker;
        // A damaged topic is listed with what is wrong; one deleted between the listing and
        // its description is left out.
        let topics = broker
            .list_topics()
            .into_iter()
            .filter_map(|name| match broker.describe_topic(&name) {
                Ok(topic) => Some(v1::TopicSummary {
                    partitions: topic.partitions.len() as u32,
                    name: topic.name,
                    damage: None,
                }),
                Err(err @ BrokerError::TopicDamaged { .. }) => Some(v1::TopicSummary {
                    name,
                    partitions: 0,
                    damage: Some(err.to_string()),
                }),
                Err(_) => None,
            })
            .collect();
        respond(Ok(v1::ListTopicsResponse { topics }))
    }

    #[instrument(name = "describe_topic", skip_all, fields(topic = %request.get_ref().name))]
    async fn describe_topic(
        &self,
        request: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::DescribeTopicResponse>, Status> {
        let result = self.state.broker.describe_topic(&request.get_ref().name);
        respond(
            result
                .map(convert::topic_description)
                .map_err(ApiError::from),
        )
    }

    #[instrument(name = "list_groups", skip_all)]
    async fn list_groups(
        &self,
        _request: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        let result = self.state.broker.list_groups();
        respond(
            result
                .map(|groups| v1::ListGroupsResponse { groups })
                .map_err(ApiError::from),
        )
    }

    #[instrument(name = "describe_group", skip_all, fields(group = %request.get_ref().group))]
    async fn describe_group(
        &self,
        request: Request<v1::DescribeGroupRequest>,
    ) -> Result<Response<v1::DescribeGroupResponse>, Status> {
        let group = request.into_inner().group;
        let broker = &self.state.broker;
        let result = broker.describe_group(&group).and_then(|lags| {
            let (generation, strategy, members) =
                convert::group_membership(broker.group_membership(&group)?);
            Ok(v1::DescribeGroupResponse {
                partitions: lags.into_iter().map(convert::partition_lag).collect(),
                group,
                members,
                generation,
                strategy,
            })
        });
        respond(result.map_err(ApiError::from))
    }
}
