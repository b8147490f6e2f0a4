//! DCB example: course subscriptions with two invariants that span entities, and no aggregate:
//! a course never takes more students than its capacity, and a student subscribes to at most
//! 10 courses. One event (`StudentSubscribed`, tagged with both ids) serves both rules.
//!
//! Run with `cargo run --example course_subscription` (embedded SQLite).

use pupsourcing::dcb::{
    CommandExecutor, CommandHandler, DecisionModel, ExecuteError, Handle, Query, QueryItem,
    StateProjector, States, tag,
};
use pupsourcing::sqlite::SqliteEventStore;
use pupsourcing::{NewEvent, RecordedEvent, StoreConfig};
use serde::{Deserialize, Serialize};

/// The most courses one student may take.
const MAX_COURSES_PER_STUDENT: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command")]
enum Command {
    DefineCourse { course: String, capacity: u32 },
    ChangeCapacity { course: String, capacity: u32 },
    Subscribe { student: String, course: String },
}

#[derive(Debug, PartialEq)]
enum Refused {
    CourseExists,
    NoSuchCourse,
    BelowEnrolment { enrolled: u32 },
    CourseFull,
    AlreadySubscribed,
    TooManyCourses,
}

#[derive(Debug, Serialize, Deserialize)]
struct CourseData {
    course: String,
    capacity: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Subscription {
    student: String,
    course: String,
}

/// What the rules need to know about one course.
#[derive(Debug, Default, Clone)]
struct Course {
    defined: bool,
    capacity: u32,
    enrolled: u32,
}

/// What the rules need to know about one student.
#[derive(Debug, Default, Clone)]
struct Student {
    courses: Vec<String>,
}

fn course_query(course: &str) -> Query {
    Query::from_items([QueryItem::types([
        "CourseDefined",
        "CourseCapacityChanged",
        "StudentSubscribed",
    ])
    .with_tags([tag("course", course)])])
}

fn course_projector(course: &str) -> StateProjector<Course> {
    StateProjector::new(
        "course",
        course_query(course),
        Course::default(),
        |mut c, e: &RecordedEvent| {
            match e.event_type.as_str() {
                "CourseDefined" | "CourseCapacityChanged" => {
                    c.defined = true;
                    c.capacity = e.json::<CourseData>().map(|d| d.capacity).unwrap_or(c.capacity);
                }
                _ => c.enrolled += 1,
            }
            c
        },
    )
}

fn student_projector(student: &str) -> StateProjector<Student> {
    let query = Query::from_items([
        QueryItem::types(["StudentSubscribed"]).with_tags([tag("student", student)])
    ]);
    StateProjector::new("student", query, Student::default(), |mut s, e: &RecordedEvent| {
        if let Ok(sub) = e.json::<Subscription>() {
            s.courses.push(sub.course);
        }
        s
    })
}

/// The handler of all three commands.
struct Courses;

/// Handles to the states a command needs.
struct Needs {
    course: Handle<Course>,
    student: Option<Handle<Student>>,
}

impl CommandHandler for Courses {
    type Command = Command;
    type Error = Refused;
    type Handles = Needs;

    fn command_type(&self, command: &Command) -> String {
        match command {
            Command::DefineCourse { .. } => "DefineCourse",
            Command::ChangeCapacity { .. } => "ChangeCapacity",
            Command::Subscribe { .. } => "Subscribe",
        }
        .to_string()
    }

    fn model(&self, command: &Command, model: &mut DecisionModel) -> Needs {
        match command {
            Command::DefineCourse { course, .. } | Command::ChangeCapacity { course, .. } => {
                Needs { course: model.add(course_projector(course)), student: None }
            }
            Command::Subscribe { student, course } => Needs {
                course: model.add(course_projector(course)),
                student: Some(model.add(student_projector(student))),
            },
        }
    }

    fn decide(
        &self,
        command: &Command,
        needs: &Needs,
        states: &States,
    ) -> Result<Vec<NewEvent>, Refused> {
        let course_state = states.get(needs.course);
        match command {
            Command::DefineCourse { course, capacity } => {
                if course_state.defined {
                    return Err(Refused::CourseExists);
                }
                let data = CourseData { course: course.clone(), capacity: *capacity };
                Ok(vec![event("CourseDefined", &data, vec![tag("course", course)])])
            }
            Command::ChangeCapacity { course, capacity } => {
                if !course_state.defined {
                    return Err(Refused::NoSuchCourse);
                }
                if *capacity < course_state.enrolled {
                    return Err(Refused::BelowEnrolment { enrolled: course_state.enrolled });
                }
                let data = CourseData { course: course.clone(), capacity: *capacity };
                Ok(vec![event("CourseCapacityChanged", &data, vec![tag("course", course)])])
            }
            Command::Subscribe { student, course } => {
                let student_state =
                    needs.student.map(|h| states.get(h).clone()).unwrap_or_default();
                if !course_state.defined {
                    return Err(Refused::NoSuchCourse);
                }
                if student_state.courses.contains(course) {
                    return Err(Refused::AlreadySubscribed);
                }
                if course_state.enrolled >= course_state.capacity {
                    return Err(Refused::CourseFull);
                }
                if student_state.courses.len() >= MAX_COURSES_PER_STUDENT {
                    return Err(Refused::TooManyCourses);
                }
                let data = Subscription { student: student.clone(), course: course.clone() };
                let tags = vec![tag("student", student), tag("course", course)];
                Ok(vec![event("StudentSubscribed", &data, tags)])
            }
        }
    }
}

/// A tagged event with a JSON payload. The payloads here are plain structs, which always
/// serialise.
fn event<T: Serialize>(kind: &str, data: &T, tags: Vec<String>) -> NewEvent {
    NewEvent::json(kind, data).expect("plain structs serialise").with_tags(tags)
}

#[tokio::main]
async fn main() -> pupsourcing::Result<()> {
    let store = SqliteEventStore::connect("sqlite::memory:", StoreConfig::default()).await?;
    store.migrate().await?;
    let executor = CommandExecutor::new(store.clone());
    let run = |command: Command| {
        let executor = executor.clone();
        async move {
            let outcome = executor.execute(&Courses, &command).await;
            match &outcome {
                Ok(done) => println!("{command:?}: ok at {:?}", done.positions),
                Err(ExecuteError::Rejected(why)) => println!("{command:?}: refused ({why:?})"),
                Err(ExecuteError::Store(err)) => println!("{command:?}: store error {err}"),
            }
            outcome
        }
    };
    run(Command::DefineCourse { course: "rust-101".into(), capacity: 2 }).await.ok();
    run(Command::DefineCourse { course: "rust-101".into(), capacity: 5 }).await.ok();
    run(Command::Subscribe { student: "ada".into(), course: "rust-101".into() }).await.ok();
    run(Command::Subscribe { student: "ada".into(), course: "rust-101".into() }).await.ok();
    run(Command::Subscribe { student: "bob".into(), course: "rust-101".into() }).await.ok();
    run(Command::Subscribe { student: "cy".into(), course: "rust-101".into() }).await.ok();
    run(Command::ChangeCapacity { course: "rust-101".into(), capacity: 1 }).await.ok();
    run(Command::ChangeCapacity { course: "rust-101".into(), capacity: 3 }).await.ok();
    run(Command::Subscribe { student: "cy".into(), course: "rust-101".into() }).await.ok();
    run(Command::Subscribe { student: "dee".into(), course: "go-201".into() }).await.ok();

    // Twenty students race for the last seats of a 5-seat course: exactly five get in.
    run(Command::DefineCourse { course: "popular".into(), capacity: 5 }).await.ok();
    let racers: Vec<_> = (0..20)
        .map(|i| {
            let executor = executor.clone();
            tokio::spawn(async move {
                let command =
                    Command::Subscribe { student: format!("s{i}"), course: "popular".into() };
                executor.execute(&Courses, &command).await.is_ok()
            })
        })
        .collect();
    let mut admitted = 0;
    for racer in racers {
        admitted += usize::from(racer.await.unwrap_or(false));
    }
    println!("20 students raced for 5 seats: {admitted} admitted");
    assert_eq!(admitted, 5);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pupsourcing::dcb::Scenario;

    /// The example itself, end to end on embedded SQLite (its races included).
    #[test]
    fn the_example_runs() {
        main().expect("the example runs");
    }

    fn defined(course: &str, capacity: u32) -> NewEvent {
        let data = CourseData { course: course.into(), capacity };
        NewEvent::json("CourseDefined", &data).unwrap().with_tags([tag("course", course)])
    }

    fn subscribed(student: &str, course: &str) -> NewEvent {
        let data = Subscription { student: student.into(), course: course.into() };
        NewEvent::json("StudentSubscribed", &data)
            .unwrap()
            .with_tags([tag("student", student), tag("course", course)])
    }

    fn subscribe(student: &str, course: &str) -> Command {
        Command::Subscribe { student: student.into(), course: course.into() }
    }

    #[test]
    fn defines_a_course_once() {
        let define = Command::DefineCourse { course: "c1".into(), capacity: 3 };
        Scenario::new(&Courses).when(&define).then_event_types(&["CourseDefined"]);
        Scenario::new(&Courses)
            .given([defined("c1", 3)])
            .when(&define)
            .then_error(|e| *e == Refused::CourseExists);
    }

    #[test]
    fn capacity_changes_respect_enrolment() {
        let change = |capacity| Command::ChangeCapacity { course: "c1".into(), capacity };
        Scenario::new(&Courses).when(&change(5)).then_error(|e| *e == Refused::NoSuchCourse);
        let history = [defined("c1", 3), subscribed("a", "c1"), subscribed("b", "c1")];
        Scenario::new(&Courses)
            .given(history.clone())
            .when(&change(1))
            .then_error(|e| *e == Refused::BelowEnrolment { enrolled: 2 });
        Scenario::new(&Courses)
            .given(history)
            .when(&change(2))
            .then_event_types(&["CourseCapacityChanged"]);
    }

    #[test]
    fn subscriptions_follow_every_rule() {
        Scenario::new(&Courses)
            .when(&subscribe("a", "c1"))
            .then_error(|e| *e == Refused::NoSuchCourse);
        Scenario::new(&Courses)
            .given([defined("c1", 1), subscribed("b", "c1")])
            .when(&subscribe("a", "c1"))
            .then_error(|e| *e == Refused::CourseFull);
        Scenario::new(&Courses)
            .given([defined("c1", 5), subscribed("a", "c1")])
            .when(&subscribe("a", "c1"))
            .then_error(|e| *e == Refused::AlreadySubscribed);
        let mut busy: Vec<NewEvent> = (0..10).map(|i| defined(&format!("k{i}"), 9)).collect();
        busy.extend((0..10).map(|i| subscribed("a", &format!("k{i}"))));
        busy.push(defined("c1", 5));
        Scenario::new(&Courses)
            .given(busy)
            .when(&subscribe("a", "c1"))
            .then_error(|e| *e == Refused::TooManyCourses);
        let events = Scenario::new(&Courses)
            .given([
                defined("c1", 2),
                subscribed("b", "c1"),
                defined("other", 1),
                subscribed("x", "other"),
            ])
            .when(&subscribe("a", "c1"))
            .then_event_types(&["StudentSubscribed"]);
        assert_eq!(events[0].tags, ["student:a", "course:c1"]);
    }
}
