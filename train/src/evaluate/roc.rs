//! Threshold-free classifier scores: ROC AUC, the precision–recall curve and
//! average precision, computed from (score, label) pairs.

use serde::{Deserialize, Serialize};

/// Area under the ROC curve as the Mann–Whitney statistic: the probability
/// that a random positive scores above a random negative, ties counting one
/// half (average ranks). `None` when either class is absent.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        // Ranks are 1-based; every member of a tie group gets the group's mean rank.
        let mean_rank = (start + end) as f64 / 2.0 + 1.0;
        let tied_positives = order[start..=end].iter().filter(|&&i| labels[i]).count();
        positive_rank_sum += mean_rank * tied_positives as f64;
        start = end + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((positive_rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// One operating point: everything scoring `>= threshold` is called positive.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrPoint {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub true_positives: u64,
    pub false_positives: u64,
}

/// The precision–recall curve with one point per distinct score, from the
/// highest threshold (lowest recall) down. Empty when there are no positives,
/// since recall is then undefined.
pub fn pr_curve(scores: &[f32], labels: &[bool]) -> Vec<PrPoint> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut curve = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = order
            .get(k + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if last_of_tie {
            curve.push(PrPoint {
                threshold: f64::from(scores[i]),
                precision: tp as f64 / (tp + fp) as f64,
                recall: tp as f64 / positives as f64,
                true_positives: tp,
                false_positives: fp,
            });
        }
    }
    curve
}

/// Average precision as scikit-learn defines it: `Σ (Rₙ − Rₙ₋₁) Pₙ` over the
/// curve's points (a step function, no interpolation). `None` without positives.
pub fn average_precision(curve: &[PrPoint]) -> Option<f64> {
    if curve.is_empty() {
        return None;
    }
    let mut previous_recall = 0.0;
    let mut ap = 0.0;
    for point in curve {
        ap += (point.recall - previous_recall) * point.precision;
        previous_recall = point.recall;
    }
    Some(ap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn perfect_reversed_and_chance_rankings() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(roc_auc(&[0.5; 4], &labels), Some(0.5));
        assert_eq!(roc_auc(&[0.5, 0.6], &[true, true]), None);
    }

    #[test]
    fn ties_between_classes_count_one_half() {
        // Pairs (pos, neg): (0.5 vs 0.5) ½, (0.5 vs 0.1) 1, (0.9 vs 0.5) 1, (0.9 vs 0.1) 1.
        let auc = roc_auc(&[0.1, 0.5, 0.5, 0.9], &[false, false, true, true]).unwrap();
        assert!(close(auc, 3.5 / 4.0), "{auc}");
    }

    #[test]
    fn pr_curve_has_a_point_per_distinct_threshold() {
        let scores = [0.9, 0.8, 0.8, 0.3, 0.1];
        let labels = [true, false, true, false, true];
        let curve = pr_curve(&scores, &labels);
        let thresholds: Vec<f64> = curve.iter().map(|p| p.threshold).collect();
        assert_eq!(
            thresholds,
            vec![0.9f32, 0.8, 0.3, 0.1]
                .into_iter()
                .map(f64::from)
                .collect::<Vec<_>>()
        );
        assert!(close(curve[0].precision, 1.0) && close(curve[0].recall, 1.0 / 3.0));
        // Both 0.8s enter together: 2 TP of 3 called.
        assert!(close(curve[1].precision, 2.0 / 3.0) && close(curve[1].recall, 2.0 / 3.0));
        assert!(close(curve[3].precision, 3.0 / 5.0) && close(curve[3].recall, 1.0));
        // AP = 1/3·1 + 1/3·2/3 + 0·2/4 + 1/3·3/5
        let ap = average_precision(&curve).unwrap();
        assert!(close(ap, (1.0 + 2.0 / 3.0 + 3.0 / 5.0) / 3.0), "{ap}");
    }

    #[test]
    fn perfect_ranking_has_average_precision_one_and_no_positives_none() {
        let curve = pr_curve(&[0.9, 0.7, 0.2], &[true, true, false]);
        assert_eq!(average_precision(&curve), Some(1.0));
        assert!(pr_curve(&[0.3], &[false]).is_empty());
        assert_eq!(average_precision(&[]), None);
    }
}
