package io.dedupfs.it;

import java.lang.annotation.ElementType;
import java.lang.annotation.Inherited;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.parallel.Execution;
import org.junit.jupiter.api.parallel.ExecutionMode;
import org.junit.jupiter.api.parallel.ResourceLock;

/**
 * Runs an IT class in the module's second lane: the classes so marked run one at a time, by the
 * lock {@value #LOCK}, beside the other classes, which run one after another in the first lane
 * (junit-platform configuration in this module's pom). The classes on the test Ceph cluster ({@link
 * RadosMounts}) are here because they must run one at a time among themselves (they count the
 * pool's objects); a few long classes that use no cluster are here to even out the two lanes, so
 * the two cores of the CI machine stay busy to the end: the ITs took 26:30 minutes with only the
 * Ceph classes in this lane, 25:01 with CloneIT and CliBadInputIT too (the first lane then ran
 * about 1,490 s, this one about 1,290 s; CrashIT, now here too, was the first's last 143 s, alone).
 */
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@Inherited
@Execution(ExecutionMode.CONCURRENT)
@ResourceLock(SecondLane.LOCK)
@interface SecondLane {
  /** The lock the classes of the lane hold, each for all of its tests. */
  String LOCK = "dedupfs-it-second-lane";
}
