//! Recovery: time from a dropped connection to data flowing again on every subscription.

use super::*;

pub(crate) async fn recovery(server: &Server, drops: usize, subs: usize) -> Vec<Duration> {
    server.shared.data_on_ack.store(true, Ordering::SeqCst);
    let (client, _messages) = Client::connect(config(&server.url()), Kalshi::new())
        .await
        .expect("connect");
    let mut subscriptions = subscribe_all(&client, subs, QueueOptions::default()).await;
    for sub in &mut subscriptions {
        next_data(sub).await.expect("initial data");
    }
    let mut times = Vec::with_capacity(drops);
    for round in 0..drops {
        let conn = server.conn_with(subs).await;
        let aborted_at = conn.abort().await.expect("abort");
        let firsts = futures::future::join_all(subscriptions.iter_mut().map(|sub| async move {
            tokio::time::timeout(Duration::from_secs(10), next_data(sub))
                .await
                .ok()
                .flatten()
                .map(|_| Instant::now())
        }))
        .await;
        let Some(last) = firsts
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max())
        else {
            panic!("round {round}: a stream did not recover within 10 s");
        };
        times.push(last - aborted_at);
    }
    let stats = client.stats();
    assert_eq!(stats.reconnects as usize, drops, "{stats:?}");
    drop(subscriptions);
    let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    server.shared.data_on_ack.store(false, Ordering::SeqCst);
    times
}
